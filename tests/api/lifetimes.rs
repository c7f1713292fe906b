//! Certificate lifetimes per enrollment channel and per facility (issue 26,
//! item 4), on both backends: a device enrolled by EST is managed and gets
//! the short lifetime, by enrollment and by every renewal; one installed by
//! hand gets a year; a facility's own lifetimes (set by 行政管理課 only,
//! 1 to 398 days) apply to the next certificate; managed devices stay off
//! the expiry list, which would otherwise hold every one of them.

use connect_pki_e2e::builders::{b64, csr, est_certificate};
use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app_with};
use serde_json::json;

/// Days between notBefore and notAfter, read with x509-parser.
fn days_of(cert_der: &[u8]) -> i64 {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).expect("certificate");
    let v = cert.validity();
    (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400
}

/// A device of a new user of `facility`, enrolled by EST.
async fn by_est(app: &TestApp, by: &Identity, facility: i64, login: &str) -> Identity {
    let user = app.register(by, facility, login, "staff").await;
    let code = app.code_for(by, user).await;
    let (key_der, _, der) = csr(login);
    let mut req = Req::new("POST", "/.well-known/est/simpleenroll").body("application/pkcs10", b64(&der));
    req.headers.push(("authorization".into(), format!("Basic {}", b64(format!("mdm:{code}").as_bytes()))));
    let r = app.try_mtls(None, req).await.expect("EST");
    assert_eq!(r.status, 200, "{}", r.text());
    Identity { cert_der: est_certificate(&r.text()), key_der }
}

async fn reenroll(app: &TestApp, who: &Identity, cn: &str) -> Identity {
    let (key_der, _, der) = csr(cn);
    let req = Req::new("POST", "/.well-known/est/simplereenroll").body("application/pkcs10", b64(&der));
    let r = app.try_mtls(Some(who), req).await.expect("EST");
    assert_eq!(r.status, 200, "{}", r.text());
    Identity { cert_der: est_certificate(&r.text()), key_der }
}

async fn managed_devices_live_short_and_a_facility_sets_its_own(backend: Backend) {
    let opts = AppOptions::with(|c| c.ra.expiry_notice_days = 30);
    let app = spawn_app_with(backend, opts).await;
    // The service's: a week managed, a year by hand.
    let managed = by_est(&app, &app.admin, 1, "kanri.tablet").await;
    assert_eq!(days_of(&managed.cert_der), 7);
    let by_hand = app.device("te.de").await;
    assert_eq!(days_of(&by_hand.id.cert_der), 365);
    assert_eq!(days_of(&reenroll(&app, &managed, "kanri.tablet").await.cert_der), 7, "renewed longer");

    // A facility's own, set by 行政管理課 only, within bounds.
    let f = app.facility(&app.admin, "短期の施設", "tanki.kanri").await;
    let manager = app.manager(&f, "tanki-pc").await;
    let path = format!("/api/v1/facilities/{}/lifetimes", f.id);
    let body = json!({"by_hand_days": 30, "managed_days": 2});
    let (status, out) = app.api("PUT", &path, Some(&manager.id), Some(&body)).await;
    assert_eq!(status, 403, "{out}");
    for bad in [json!({"managed_days": 0}), json!({"by_hand_days": 399}), json!({"managed_days": "x"})] {
        let (status, out) = app.api("PUT", &path, Some(&app.admin), Some(&bad)).await;
        assert!(status == 422 || status == 400, "{bad}: {status} {out}");
    }
    let (status, out) = app.api("PUT", &path, Some(&app.admin), Some(&body)).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!((out["effective_by_hand_days"].as_u64(), out["effective_managed_days"].as_u64()), (Some(30), Some(2)));
    let (_, read) = app.api("GET", &path, Some(&manager.id), None).await;
    assert_eq!(read, out);
    let tablet = by_est(&app, &manager.id, f.id, "tanki.tablet").await;
    assert_eq!(days_of(&tablet.cert_der), 2);
    assert_eq!(days_of(&reenroll(&app, &tablet, "tanki.tablet").await.cert_der), 2);
    let staff = app.staff(&manager.id, f.id, "tanki.staff").await;
    assert_eq!(days_of(&staff.id.cert_der), 30);
    let (status, _) = app.api("PUT", "/api/v1/facilities/999999/lifetimes", Some(&app.admin), Some(&body)).await;
    assert_eq!(status, 404);
    // Audited.
    let (_, log) = app.api("GET", "/api/v1/audit?limit=200", Some(&app.admin), None).await;
    assert!(log.as_array().expect("audit").iter().any(|e| e["action"] == "facility.lifetimes"), "{log}");

    // The expiry list: the 30-day certificate is on it, the 2-day managed ones are not.
    let (_, expiring) = app.api("GET", "/api/v1/certificates/expiring?days=30", Some(&app.admin), None).await;
    let listed = expiring.to_string();
    assert!(listed.contains(&staff.serial), "{expiring}");
    assert!(!listed.contains(&tablet.serial()), "a managed device on the expiry list: {expiring}");
}
both_backends!(managed_devices_live_short_and_a_facility_sets_its_own);

/// The facility page states the lifetimes and the worst exposure they imply:
/// the shorter of a certificate's life and how long a relying party may
/// keep the CRL (72 h here) — a 2-day managed certificate bounds it.
async fn the_facility_page_states_the_lifetimes_and_the_worst_exposure(backend: Backend) {
    let opts = AppOptions::with(|c| c.crl_validity = time::Duration::hours(72));
    let app = spawn_app_with(backend, opts).await;
    let f = app.facility(&app.admin, "短期の施設", "tanki.kanri").await;
    let path = format!("/api/v1/facilities/{}/lifetimes", f.id);
    let (status, out) = app.api("PUT", &path, Some(&app.admin), Some(&json!({"managed_days": 2}))).await;
    assert_eq!(status, 200, "{out}");
    let page = app.try_mtls(Some(&app.admin), Req::new("GET", &format!("/console/facilities/{}", f.id))).await;
    let text = page.expect("the facility page").text();
    assert!(
        text.contains(
            "手作業で取り込んだ端末 365 日（全体の設定）、端末管理システムが自動で更新する端末 2 日（この施設の設定）"
        ),
        "{text}"
    );
    assert!(text.contains("手作業で取り込んだ端末 72 時間、端末管理システムの端末 48 時間"), "{text}");
}
both_backends!(the_facility_page_states_the_lifetimes_and_the_worst_exposure);
