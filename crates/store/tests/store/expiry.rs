//! Expiry notices in the store: a notice is recorded with its e-mails and
//! its audit record in one transaction, once, and only while it is the one
//! due for a certificate still in force — however many callers ask at once.

use connect_pki_domain::certificate::Change;
use connect_pki_domain::{Reason, Serial};
use connect_pki_store::testing::TestDb;
use connect_pki_store::{ExpiryNotice, NoticeSubject, Target, both_backends};
use time::Duration;

use crate::{bootstrapped, count, now, serial};

fn mail(to: &str) -> Target {
    Target { channel: connect_pki_domain::NotifyChannel::Email, target: to.into() }
}

fn notice<'a>(serial: &'a Serial, subject: NoticeSubject, threshold: u32, targets: &'a [Target]) -> ExpiryNotice<'a> {
    const THRESHOLDS: &[u32] = &[30, 7];
    ExpiryNotice {
        serial,
        subject,
        not_after: now() + Duration::days(365),
        threshold,
        thresholds: THRESHOLDS,
        targets,
        payload: "{}",
    }
}

async fn expiring_in_outbox(url: &str) -> i64 {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::query("select count(*) as n from notifications where event = 'expiring' and escalation_id is null")
        .fetch_one(&mut conn)
        .await
        .expect("count")
        .try_get("n")
        .expect("n")
}

async fn a_notice_is_recorded_once_and_only_while_due(db: TestDb) {
    let store = bootstrapped(&db).await;
    // The bootstrap certificate (serial 1) runs out 365 days after now().
    let cert = serial(1);
    let at = now() + Duration::days(365 - 20);
    let listed = store.expiring_certificates(None, at, at + Duration::days(30)).await.expect("list");
    assert_eq!(listed.iter().map(|e| e.certificate.serial.clone()).collect::<Vec<_>>(), vec![cert.clone()]);
    assert!(listed[0].notices.is_empty());
    assert!(store.expiring_certificates(None, at, at + Duration::days(19)).await.expect("list").is_empty());

    let to = [mail("a@example.test"), mail("b@example.test")];
    let audit = count(&db.url, "audit_log").await;
    assert!(!store.record_expiry_notice(&notice(&cert, NoticeSubject::Device, 7, &to), at).await.expect("7"));
    assert!(store.record_expiry_notice(&notice(&cert, NoticeSubject::Device, 30, &to), at).await.expect("30"));
    assert!(!store.record_expiry_notice(&notice(&cert, NoticeSubject::Device, 30, &to), at).await.expect("again"));
    assert_eq!(expiring_in_outbox(&db.url).await, 2, "one e-mail per recipient, once");
    assert_eq!(count(&db.url, "audit_log").await, audit + 1);
    assert_eq!(store.expiry_notices(&cert).await.expect("notices"), vec![30]);
    let listed = store.expiring_certificates(None, at, at + Duration::days(30)).await.expect("list");
    assert_eq!(listed[0].notices, vec![30]);

    // Revoked before the last week: no final notice.
    store.change_certificate(&cert, Change::Revoke(Reason::KeyCompromise), "user:1", at).await.expect("revoke");
    let last_week = now() + Duration::days(365 - 6);
    assert!(!store.record_expiry_notice(&notice(&cert, NoticeSubject::Device, 7, &to), last_week).await.expect("7"));
    assert!(
        store.expiring_certificates(None, last_week, last_week + Duration::days(30)).await.expect("list").is_empty()
    );

    // A CA certificate first seen in its last week: the final notice alone.
    let root = Serial::from_bytes(&[0x7f, 1, 2, 3]).expect("serial");
    assert!(store.record_expiry_notice(&notice(&root, NoticeSubject::Root, 7, &to), last_week).await.expect("7"));
    assert!(!store.record_expiry_notice(&notice(&root, NoticeSubject::Root, 30, &to), last_week).await.expect("30"));
    assert_eq!(store.expiry_notices(&root).await.expect("notices"), vec![7]);
    assert_eq!(expiring_in_outbox(&db.url).await, 4);
    assert_eq!(store.verify_audit().await.expect("verify").first_break, None);
}
both_backends!(
    a_notice_is_recorded_once_and_only_while_due,
    crate::expiry::a_notice_is_recorded_once_and_only_while_due
);

async fn concurrent_callers_record_a_notice_once(db: TestDb) {
    let store = bootstrapped(&db).await;
    let at = now() + Duration::days(365 - 29);
    for round in 0..20u8 {
        let ca = Serial::from_bytes(&[0x7e, round, 9, 9]).expect("serial");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, ca) = (store.clone(), ca.clone());
                tokio::spawn(async move {
                    let to = [mail("city@example.test")];
                    store.record_expiry_notice(&notice(&ca, NoticeSubject::Issuing, 30, &to), at).await
                })
            })
            .collect();
        let mut sent = 0;
        for t in tasks {
            sent += usize::from(t.await.expect("join").expect("no caller fails"));
        }
        assert_eq!(sent, 1, "round {round}");
        assert_eq!(expiring_in_outbox(&db.url).await, i64::from(round) + 1, "round {round}");
    }
}
both_backends!(concurrent_callers_record_a_notice_once, crate::expiry::concurrent_callers_record_a_notice_once);
