//! Suspending a facility reaches relying parties (issue 11, item 4): every
//! valid certificate of its users goes on hold (certificateHold) before the
//! call returns — OCSP says so, the CRL lists it, our handshake refuses it and
//! open connections are closed — and resuming releases exactly those holds:
//! not one an emergency report keeps, not a certificate revoked meanwhile.
//! While suspended, no release (direct or by an escalation's resolution)
//! lifts a hold of the facility; closing revokes them all as before.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use connect_pki_e2e::builders::Enrolled;
use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

/// CRL reason codes (RFC 5280 §5.3.1) the tests expect.
pub(crate) const CERTIFICATE_HOLD: u8 = 6;
const KEY_COMPROMISE: u8 = 1;
const CESSATION_OF_OPERATION: u8 = 5;

pub(crate) async fn post(app: &TestApp, who: &Identity, path: &str, body: Option<&Value>) -> (u16, Value) {
    app.api("POST", path, Some(who), body).await
}

/// 行政管理課 suspends, resumes or closes facility `id`; returns the answer.
pub(crate) async fn facility_step(app: &TestApp, id: i64, step: &str) -> Value {
    let (status, out) = post(app, &app.admin, &format!("/api/v1/facilities/{id}/{step}"), None).await;
    assert_eq!(status, 200, "{step}: {out}");
    out
}

pub(crate) fn serials(list: &Value) -> BTreeSet<String> {
    list.as_array().expect("a list").iter().map(|s| s.as_str().expect("serial").to_string()).collect()
}

pub(crate) fn set(of: &[&Enrolled]) -> BTreeSet<String> {
    of.iter().map(|d| d.serial.clone()).collect()
}

/// The served CRL's entries: serial (lowercase hex) → reason code.
pub(crate) async fn crl(app: &TestApp) -> BTreeMap<String, Option<u8>> {
    let reply = app.public(Req::new("GET", "/crl/issuing.crl")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (_, crl) = x509_parser::parse_x509_crl(&reply.body).expect("a CRL");
    crl.iter_revoked_certificates()
        .map(|r| {
            let raw = r.raw_serial();
            let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
            let hex: String = raw[start..].iter().map(|b| format!("{b:02x}")).collect();
            (hex, r.reason_code().map(|(_, code)| code.0))
        })
        .collect()
}

/// A facility with its manager and staff members `logins`.
pub(crate) async fn facility(app: &TestApp, name: &str, logins: &[&str]) -> (i64, Enrolled, Vec<Enrolled>) {
    let f = app.facility(&app.admin, name, &format!("{}.kanri", logins[0])).await;
    let manager = app.manager(&f, &format!("{name} 管理者")).await;
    let mut staff = Vec::new();
    for login in logins {
        staff.push(app.staff(&manager.id, f.id, login).await);
    }
    (f.id, manager, staff)
}

/// Each of `devices` as relying parties see it: OCSP, our handshake, the CRL.
async fn assert_held(app: &TestApp, devices: &[&Enrolled]) {
    let listed = crl(app).await;
    for d in devices {
        assert_eq!(app.ocsp_status(&d.id).await, "revoked certificateHold", "{}", d.serial);
        assert!(!app.handshake_ok(&d.id).await, "{} still gets through the handshake", d.serial);
        assert_eq!(listed.get(&d.serial), Some(&Some(CERTIFICATE_HOLD)), "{} in the CRL: {listed:?}", d.serial);
    }
}

async fn assert_good(app: &TestApp, devices: &[&Enrolled]) {
    let listed = crl(app).await;
    for d in devices {
        assert_eq!(app.ocsp_status(&d.id).await, "good", "{}", d.serial);
        assert!(app.handshake_ok(&d.id).await, "{} is refused at the handshake", d.serial);
        assert!(!listed.contains_key(&d.serial), "{} still in the CRL: {listed:?}", d.serial);
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A keep-alive connection to the mTLS API as `who`, after one answered request.
async fn open_connection(app: &TestApp, who: &Identity) -> Tls {
    let config = connect_pki_e2e::client::tls_config(&app.ca.root_der, Some(who));
    let addr = app.api;
    tokio::task::spawn_blocking(move || {
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name").to_owned();
        let conn = rustls::ClientConnection::new(config, name).expect("TLS client");
        let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr).expect("connect"));
        tls.write_all(b"GET /api/v1/whoami HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").expect("request");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        // The whole answer: headers, then Content-Length bytes of body.
        loop {
            let n = tls.read(&mut buf).expect("answer");
            assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .expect("content-length");
                if seen.len() >= end + 4 + length {
                    return tls;
                }
            }
        }
    })
    .await
    .expect("connection task")
}

/// Whether the server closes `tls` within two seconds.
async fn closed_soon(mut tls: Tls) -> bool {
    tokio::task::spawn_blocking(move || {
        tls.sock.set_read_timeout(Some(std::time::Duration::from_secs(2))).expect("timeout");
        let mut buf = [0u8; 256];
        match tls.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    })
    .await
    .expect("connection task")
}

/// Suspend: every certificate of the facility is held before the answer, at
/// OCSP, the CRL and our handshake, and an open connection is closed; another
/// facility is untouched, and no direct release lifts the hold. Resume: all
/// good again.
async fn suspension_holds_the_facility_and_resume_releases_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let (f, manager, staff) = facility(&app, "訪問介護みなみ", &["minami.taro"]).await;
    let staff = &staff[0];
    let elsewhere = app.device("city.staff").await;
    let open = open_connection(&app, &manager.id).await;

    let out = facility_step(&app, f, "suspend").await;
    assert_eq!(out["facility"]["status"], "suspended", "{out}");
    assert_eq!(serials(&out["held_serials"]), set(&[&manager, staff]), "{out}");
    assert!(closed_soon(open).await, "the manager's open connection survived the suspension");
    assert_held(&app, &[&manager, staff]).await;
    assert_eq!(app.ocsp_status(&elsewhere.id).await, "good", "another facility's device");
    let path = format!("/api/v1/certificates/{}", staff.serial);
    let (_, cert) = app.api("GET", &path, Some(&app.admin), None).await;
    assert_eq!((cert["status"].as_str(), cert["reason"].as_str()), (Some("on_hold"), Some("certificateHold")));

    let (status, out) = post(&app, &app.admin, &format!("{path}/release"), None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("held_by_suspension")), "{out}");
    assert_held(&app, &[staff]).await;

    let out = facility_step(&app, f, "resume").await;
    assert_eq!(out["facility"]["status"], "approved", "{out}");
    assert_eq!(serials(&out["released_serials"]), set(&[&manager, staff]), "{out}");
    assert_good(&app, &[&manager, staff]).await;
}
both_backends!(suspension_holds_the_facility_and_resume_releases_it);

/// Resume releases exactly what the suspension held: a certificate an open
/// report held before stays held (until its escalation is resolved), one
/// revoked during the suspension stays revoked, one held directly before
/// stays held and is released directly afterwards.
async fn resume_releases_only_the_suspensions_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let (f, manager, staff) = facility(&app, "訪問看護きた", &["kita.a", "kita.b", "kita.c"]).await;
    let (reported, revoked, held) = (&staff[0], &staff[1], &staff[2]);
    let body = json!({"device_id": reported.device_id, "note": "端末が見当たらない"});
    let (status, report) = post(&app, &manager.id, "/api/v1/escalations", Some(&body)).await;
    assert_eq!(status, 201, "{report}");
    let escalation = report["id"].as_i64().expect("id");
    let (status, out) = post(&app, &manager.id, &format!("/api/v1/certificates/{}/hold", held.serial), None).await;
    assert_eq!(status, 200, "{out}");

    let out = facility_step(&app, f, "suspend").await;
    assert_eq!(serials(&out["held_serials"]), set(&[&manager, revoked]), "only the valid ones change: {out}");
    assert_held(&app, &[&manager, reported, revoked, held]).await;
    let path = format!("/api/v1/certificates/{}/revoke", revoked.serial);
    let (status, out) = post(&app, &app.admin, &path, Some(&json!({"reason": "keyCompromise"}))).await;
    assert_eq!((status, out["status"].as_str()), (200, Some("revoked")), "{out}");
    // A hold the suspension only keeps cannot be lifted meanwhile either.
    let path = format!("/api/v1/certificates/{}/release", held.serial);
    let (status, out) = post(&app, &app.admin, &path, None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("held_by_suspension")), "{out}");

    let out = facility_step(&app, f, "resume").await;
    assert_eq!(serials(&out["released_serials"]), set(&[&manager]), "{out}");
    assert_good(&app, &[&manager]).await;
    assert_eq!(app.ocsp_status(&reported.id).await, "revoked certificateHold");
    assert_eq!(app.ocsp_status(&revoked.id).await, "revoked keyCompromise");
    assert_eq!(app.ocsp_status(&held.id).await, "revoked certificateHold");
    assert_eq!(crl(&app).await.get(&revoked.serial), Some(&Some(KEY_COMPROMISE)));

    let (status, out) = post(&app, &manager.id, &path, None).await;
    assert_eq!((status, out["changed"].as_bool()), (200, Some(true)), "a direct hold, free again: {out}");
    let path = format!("/api/v1/certificates/{}/release", reported.serial);
    let (status, out) = post(&app, &manager.id, &path, None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("held_by_escalation")), "{out}");
    assert_eq!(resolve(&app, escalation, "released").await, json!([reported.serial]));
    assert_good(&app, &[reported, held]).await;
}
both_backends!(resume_releases_only_the_suspensions_holds);

/// 行政管理課 claims and resolves escalation `id`; returns the serials it changed.
pub(crate) async fn resolve(app: &TestApp, id: i64, outcome: &str) -> Value {
    let (status, out) = post(app, &app.admin, &format!("/api/v1/escalations/{id}/claim"), None).await;
    assert_eq!(status, 200, "{out}");
    let body = json!({"outcome": outcome, "note": "確認済み"});
    let (status, out) = post(app, &app.admin, &format!("/api/v1/escalations/{id}/resolve"), Some(&body)).await;
    assert_eq!((status, out["outcome"].as_str()), (200, Some(outcome)), "{out}");
    out["serials"].clone()
}

/// The holder of `d` reports it lost on the public emergency route (no
/// certificate needed: it works while the facility is suspended); returns
/// the escalation id, after checking the report keeps the device's hold.
async fn report_own(app: &TestApp, login: &str, d: &Enrolled) -> i64 {
    let body = json!({"login_id": login, "password": PASSWORD, "device_id": d.device_id});
    let (status, out) = app.public_api("POST", "/api/v1/emergency", Some(&body)).await;
    assert_eq!((status, &out["held_serials"]), (201, &json!([d.serial])), "{out}");
    out["escalation_id"].as_i64().expect("escalation_id")
}

/// During a suspension a report takes over the hold of the lost device (the
/// resume must not release it), and an escalation resolved as released does
/// not lift a hold the suspension keeps: the resume does.
async fn escalations_during_the_suspension(backend: Backend) {
    let app = spawn_app(backend).await;
    let (f, manager, staff) = facility(&app, "相談支援にし", &["nishi.lost", "nishi.found", "nishi.before"]).await;
    let (lost, found, before) = (&staff[0], &staff[1], &staff[2]);
    // Reported before the suspension, found during it.
    let early = report_own(&app, "nishi.before", before).await;
    facility_step(&app, f, "suspend").await;

    let mut reports = Vec::new();
    for (login, d) in [("nishi.lost", lost), ("nishi.found", found)] {
        reports.push(report_own(&app, login, d).await);
    }
    for id in [reports[1], early] {
        assert_eq!(resolve(&app, id, "released").await, json!([]), "nothing is released while suspended");
    }
    assert_held(&app, &[&manager, lost, found, before]).await;

    let out = facility_step(&app, f, "resume").await;
    assert_eq!(serials(&out["released_serials"]), set(&[&manager, found, before]), "{out}");
    assert_good(&app, &[&manager, found, before]).await;
    assert_eq!(app.ocsp_status(&lost.id).await, "revoked certificateHold", "the lost device stays held");
    assert_eq!(resolve(&app, reports[0], "revoked").await, json!([lost.serial]));
    assert_eq!(app.ocsp_status(&lost.id).await, "revoked keyCompromise");
}
both_backends!(escalations_during_the_suspension);

/// Enrollment stays refused while suspended; closing a suspended facility
/// revokes its certificates, the held ones included.
async fn closing_a_suspended_facility_revokes_the_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let (f, manager, staff) = facility(&app, "居宅介護ひがし", &["higashi.taro"]).await;
    let newcomer = app.register(&manager.id, f, "higashi.new", "staff").await;
    let code = app.code_for(&manager.id, newcomer).await;
    facility_step(&app, f, "suspend").await;
    let (_, csr, _) = connect_pki_e2e::builders::csr("higashi.new");
    let body = json!({"code": code, "csr": csr, "device_label": "new", "password": PASSWORD});
    let (status, out) = app.public_api("POST", "/api/v1/enroll", Some(&body)).await;
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("facility_not_active")), "{out}");

    let out = facility_step(&app, f, "close").await;
    assert_eq!(serials(&out["revoked_serials"]), set(&[&manager, &staff[0]]), "{out}");
    let listed = crl(&app).await;
    for d in [&manager, &staff[0]] {
        assert_eq!(app.ocsp_status(&d.id).await, "revoked cessationOfOperation");
        assert_eq!(listed.get(&d.serial), Some(&Some(CESSATION_OF_OPERATION)), "{listed:?}");
    }
    let (status, out) = post(&app, &app.admin, &format!("/api/v1/facilities/{f}/resume"), None).await;
    assert_eq!(status, 409, "closed is final: {out}");
}
both_backends!(closing_a_suspended_facility_revokes_the_holds);

/// A suspension's holds wait for the resume, however long it takes: the hold
/// limit leaves them alone, across a restart. A facility suspended before
/// suspensions held anything (its certificates valid, as the data of an
/// older version has them) is held at start.
async fn holds_outlast_the_hold_limit_and_old_suspensions_are_held_at_start(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let (f, manager, _) = facility(&app, "就労支援しろ", &["shiro.a"]).await;
    let (old, old_manager, _) = facility(&app, "就労支援くろ", &["kuro.a"]).await;
    facility_step(&app, f, "suspend").await;
    app.stop().await;
    let pool = sqlx::AnyPool::connect(&app.db.url).await.expect("direct connection");
    sqlx::query("update facilities set status = 'suspended' where id = $1")
        .bind(old)
        .execute(&pool)
        .await
        .expect("an old suspension");
    pool.close().await;
    app.clock.advance(time::Duration::hours(73));
    app.start().await;

    assert_held(&app, &[&manager, &old_manager]).await;
    let out = facility_step(&app, old, "resume").await;
    assert_eq!(serials(&out["released_serials"]).len(), 2, "{out}");
    let out = facility_step(&app, f, "resume").await;
    assert_eq!(serials(&out["released_serials"]).len(), 2, "{out}");
    assert_good(&app, &[&manager, &old_manager]).await;
}
both_backends!(holds_outlast_the_hold_limit_and_old_suspensions_are_held_at_start);

/// The pages say it in Japanese.
#[test]
fn the_refusal_reads_in_japanese() {
    use connect_pki_ra::{Conflict, ServiceError};
    use connect_pki_server::http::error::ApiError;
    let held = connect_pki_store::Conflict::HeldBySuspension {
        facility: connect_pki_domain::FacilityId(3),
        serial: "0a0b".parse().expect("serial"),
    };
    let e = ApiError::Service(ServiceError::Conflict(Conflict::Record(held)));
    assert_eq!(e.status(), 409);
    let message = e.message_ja();
    assert!(message.contains("利用停止") && message.contains("再開"), "{message}");
}
