//! Suspension and resume against what may commit beside them, through the
//! whole service (issue 11, item 4): once a suspend call has returned, and
//! the calls racing it have, no certificate of the facility passes OCSP or
//! our handshake — also one enrolled or renewed at the same moment; and a
//! lost device reported while its facility resumes stays on hold, whichever
//! commits first. The store's races (`crates/store/tests/store/races/`) run
//! the same pairs 200 times each against the database alone; these add the
//! responder, the TLS verifier and the HTTP layer, fewer times.

use std::time::Duration;

use connect_pki_e2e::builders::{csr, pem_der};
use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

use crate::facility_suspension::{facility, facility_step, serials};

/// Rounds per test and backend.
const ROUNDS: u64 = 12;

/// Which call starts first is varied by delaying one side by up to this
/// many steps of `STEP`.
const STEP: Duration = Duration::from_millis(15);

fn delay(round: u64) -> Duration {
    STEP * u32::try_from(round % 4).expect("small")
}

/// Redeems `code` with a CSR for `login`: the new identity if enrolled.
async fn enroll(app: &TestApp, code: &str, login: &str, wait: Duration) -> Option<Identity> {
    let (key_der, csr, _) = csr(login);
    let body = json!({"code": code, "csr": csr, "device_label": login, "password": PASSWORD});
    tokio::time::sleep(wait).await;
    let (status, out) = app.public_api("POST", "/api/v1/enroll", Some(&body)).await;
    match status {
        201 => Some(Identity { cert_der: pem_der(out["certificate"].as_str().expect("certificate")), key_der }),
        _ => {
            assert_eq!(out["error"]["code"], "facility_not_active", "{status} {out}");
            None
        }
    }
}

/// `who` renews its certificate: the new identity if renewed. A refused
/// handshake (the suspension came first) is an answer too.
async fn renew(app: &TestApp, who: &Identity, login: &str, wait: Duration) -> Option<Identity> {
    let (key_der, csr, _) = csr(login);
    tokio::time::sleep(wait).await;
    let req = Req::new("POST", "/api/v1/certificates/renew").json(&json!({"csr": csr}));
    let reply = app.try_mtls(Some(who), req).await.ok()?;
    let out: Value = reply.json();
    match reply.status {
        201 => Some(Identity { cert_der: pem_der(out["certificate"].as_str().expect("certificate")), key_der }),
        // Refused at the request (facility or certificate no longer usable)
        // or, when the hold came between the request's check and the
        // renewal's transaction, by the renewal itself.
        status => {
            assert!(matches!(status, 401 | 403 | 409), "{status} {out}");
            None
        }
    }
}

/// Suspend races an enrollment and a renewal in the same facility.
async fn suspend_races_enrollment_and_renewal(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mut enrolled, mut renewed) = (0, 0);
    for round in 0..ROUNDS {
        let name = format!("レース施設{round}");
        let manager_login = format!("r{round}.kanri");
        let f = app.facility(&app.admin, &name, &manager_login).await;
        let manager = app.manager(&f, &name).await;
        let newcomer = format!("r{round}.new");
        let user = app.register(&manager.id, f.id, &newcomer, "staff").await;
        let code = app.code_for(&manager.id, user).await;

        let (suspended, new, renewal) = tokio::join!(
            async {
                tokio::time::sleep(delay(round)).await;
                facility_step(&app, f.id, "suspend").await
            },
            enroll(&app, &code, &newcomer, delay(round + 2)),
            renew(&app, &manager.id, &manager_login, delay(round + 1)),
        );
        assert_eq!(suspended["facility"]["status"], "suspended", "{suspended}");
        let mut all = vec![("manager's first", manager.id.clone())];
        enrolled += u32::from(new.is_some());
        renewed += u32::from(renewal.is_some());
        all.extend(new.map(|id| ("enrolled", id)));
        all.extend(renewal.map(|id| ("renewed", id)));
        for (what, id) in &all {
            let ocsp = app.ocsp_status(id).await;
            assert!(ocsp.starts_with("revoked"), "round {round}: the {what} certificate is {ocsp} after suspend");
            assert!(!app.handshake_ok(id).await, "round {round}: the {what} certificate passes the handshake");
        }
    }
    println!("suspend races [{backend:?}]: {ROUNDS} rounds, enrolled first {enrolled}, renewed first {renewed}");
}
both_backends!(suspend_races_enrollment_and_renewal);

/// Resume races an emergency report of a device of the facility: the device
/// ends on hold for the report either way, and the rest is released.
async fn resume_races_an_emergency_report(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut report_first = 0;
    for round in 0..ROUNDS {
        let login = format!("r{round}.staff");
        let (f, manager, staff) = facility(&app, &format!("再開レース{round}"), &[&login]).await;
        let staff = &staff[0];
        facility_step(&app, f, "suspend").await;

        let body = json!({"device_id": staff.device_id, "note": "電話で受付"});
        let ((status, report), resumed) = tokio::join!(
            async {
                tokio::time::sleep(delay(round + 1)).await;
                app.api("POST", "/api/v1/escalations", Some(&app.admin), Some(&body)).await
            },
            async {
                tokio::time::sleep(delay(round)).await;
                facility_step(&app, f, "resume").await
            },
        );
        assert_eq!((status, &report["serials"]), (201, &json!([staff.serial])), "round {round}: {report}");
        let released = serials(&resumed["released_serials"]);
        assert!(released.contains(&manager.serial), "round {round}: {resumed}");
        report_first += u32::from(!released.contains(&staff.serial));
        assert_eq!(app.ocsp_status(&staff.id).await, "revoked certificateHold", "round {round}: {resumed}");
        assert!(!app.handshake_ok(&staff.id).await, "round {round}: the reported device gets through");
        assert_eq!(app.ocsp_status(&manager.id).await, "good", "round {round}");
    }
    println!("resume races [{backend:?}]: {ROUNDS} rounds, the report committed first in {report_first}");
}
both_backends!(resume_races_an_emergency_report);
