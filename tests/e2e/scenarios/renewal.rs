//! Renewal in month 11 (issue 25, item 1), on a stepped clock: early in the
//! year わたしの端末 says from when the certificate can be renewed; in month
//! 11 a member of staff renews with nothing but the browser, and openssl
//! opens the PKCS#12 and verifies the new certificate; the new certificate
//! is never installed, so after the grace period the old one is superseded:
//! refused by `openssl ocsp`, by nginx and at our handshake, while the new
//! one is accepted by all three.

use std::time::{Duration, Instant};

use connect_pki_e2e::{Backend, FakeTime, Server};
use serde_json::json;

use super::{open_p12, openssl_verify, person, says, walk};
use crate::nginx::{free_port, start_nginx, through_nginx};
use crate::revocation::{handshake_ok, ocsp_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_renew_in_month_eleven_and_the_old_certificate_stops_after_the_grace_period() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let old = person(&s, &admin, 1, "koushin.staff", "staff");
    let out = walk(&s, Some(&old), "my_page", json!({"shot": "renewal-early"}));
    says(&out, "renewal", "から、このページで更新できます");

    // Month 11: within the renewal window (30 days before the end).
    s.stop();
    s.spawn_at(FakeTime::ahead(time::Duration::days(340)), &[]);
    let p12 = s.scratch("koushin-renewed.p12");
    let out = walk(&s, Some(&old), "renew", json!({"p12": p12, "shot": "renewal-due"}));
    says(&out, "renewal", "有効期限が近づいています");
    says(&out, "renewed", "証明書を更新しました");
    says(&out, "handover", "今まで使っていた証明書は使えなくなります");
    let new = open_p12(&s, &p12, out["password"].as_str().expect("password"));
    assert!(openssl_verify(&s, &new).contains(": OK"), "{}", openssl_verify(&s, &new));
    // Not used yet: the old certificate still works.
    assert_eq!(ocsp_status(&s, &old), "good");

    // A week and a day on, the new certificate never installed: the grace
    // period is over.
    s.stop();
    s.spawn_at(FakeTime::ahead(time::Duration::days(348)), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = ocsp_status(&s, &old);
    while status == "good" {
        assert!(Instant::now() < deadline, "the old certificate is still good after the grace period");
        std::thread::sleep(Duration::from_millis(300));
        status = ocsp_status(&s, &old);
    }
    assert_eq!(status, "revoked superseded");
    assert_eq!(ocsp_status(&s, &new), "good");
    assert!(!handshake_ok(&s, &old), "the superseded certificate still gets in");
    assert!(handshake_ok(&s, &new), "the renewed certificate is refused");
    let port = free_port();
    let _nginx = start_nginx(&s, port);
    let (status, body) = through_nginx(&s, port, &new);
    let log = std::fs::read_to_string(s.scratch("nginx/error.log")).unwrap_or_default();
    assert_eq!(status, 200, "nginx refused the renewed certificate: {body}\n{log}");
    let (status, body) = through_nginx(&s, port, &old);
    assert_eq!(status, 400, "nginx let the superseded certificate through: {body}");
}
