//! CRL numbers across instances: a number is handed out only to an index at
//! least as new as the one that got the previous number.

use connect_pki_store::both_backends;
use connect_pki_store::testing::TestDb;

pub(crate) async fn crl_numbers_follow_feed_positions(db: TestDb) {
    let store = db.store().await.expect("connect");
    assert_eq!(store.next_crl_number(0).await.expect("number"), Ok(1));
    assert_eq!(store.next_crl_number(7).await.expect("number"), Ok(2));
    // An instance whose index is at 5 must first catch up to 7.
    assert_eq!(store.next_crl_number(5).await.expect("refusal"), Err(7));
    assert_eq!(store.next_crl_number(7).await.expect("number"), Ok(3), "the same position may be numbered again");
    assert_eq!(store.next_crl_number(9).await.expect("number"), Ok(4));
    // A refusal consumed no number.
    assert_eq!(store.next_crl_number(8).await.expect("refusal"), Err(9));
    assert_eq!(store.next_crl_number(9).await.expect("number"), Ok(5));
}
both_backends!(crl_numbers_follow_feed_positions, crate::crl::crl_numbers_follow_feed_positions);

/// A database restored from a backup meets the newer CRL this instance
/// published: what the CRL lists is revoked or held again, what the database
/// already revoked stays as it is, serials it never saw are reported, and
/// the CRL number rises to the published one. Run twice, it changes nothing.
pub(crate) async fn a_restored_database_takes_back_the_published_revocations(db: TestDb) {
    use connect_pki_domain::certificate::Change;
    use connect_pki_domain::{CertStatus, Reason, UserId};
    use connect_pki_store::StoreError;
    let store = crate::bootstrapped(&db).await;
    for n in 2..=5 {
        store
            .add_device::<StoreError>(UserId(1), &format!("device {n}"), "user:1", crate::now(), |_| {
                Ok(crate::fake_cert(n))
            })
            .await
            .expect("device");
    }
    // 5 was revoked before the backup; 4 is on hold in it.
    store
        .change_certificate(&crate::serial(5), Change::Revoke(Reason::AffiliationChanged), "t", crate::now())
        .await
        .expect("revoke");
    store.change_certificate(&crate::serial(4), Change::Hold, "t", crate::now()).await.expect("hold");
    assert_eq!(store.next_crl_number(0).await.expect("number"), Ok(1));

    let later = crate::now() + time::Duration::hours(1);
    let expires_by = later + time::Duration::days(3650);
    let listed: Vec<connect_pki_store::Listed> = [
        (2, Reason::KeyCompromise),
        (3, Reason::CertificateHold),
        (4, Reason::CessationOfOperation),
        (5, Reason::KeyCompromise),
        (9, Reason::KeyCompromise),
    ]
    .into_iter()
    .map(|(n, reason)| connect_pki_store::Listed {
        serial: crate::serial(n),
        reason,
        revoked_at: crate::now(),
        ca_generation: 1,
        expires_by,
    })
    .collect();
    let done = store.reapply_published(40, &listed, later).await.expect("reapply");
    assert_eq!(done.changed, vec![crate::serial(2), crate::serial(3), crate::serial(4)]);
    assert_eq!(done.unknown, vec![crate::serial(9)]);
    assert_eq!(done.raised_from, Some(1));
    let status = async |n: u8| {
        let c = store.certificate(&crate::serial(n)).await.expect("read").expect("known");
        (c.status, c.reason)
    };
    assert_eq!(status(1).await, (CertStatus::Valid, None), "not listed: untouched");
    assert_eq!(status(2).await, (CertStatus::Revoked, Some(Reason::KeyCompromise)));
    assert_eq!(status(3).await, (CertStatus::OnHold, Some(Reason::CertificateHold)));
    assert_eq!(status(4).await, (CertStatus::Revoked, Some(Reason::CessationOfOperation)));
    assert_eq!(status(5).await, (CertStatus::Revoked, Some(Reason::AffiliationChanged)), "already revoked: kept");
    // The feed carries the changes, so every index learns them.
    let feed = store.certificate_index().await.expect("index").1;
    assert!(feed.iter().any(|e| e.serial == crate::serial(2) && e.status == CertStatus::Revoked), "{feed:?}");
    // The one it never saw is revoked in every index from now on, until its CA's end.
    let nine = feed.iter().find(|e| e.serial == crate::serial(9)).expect("the unknown serial is in the index");
    assert_eq!((nine.status, nine.reason, nine.ca_generation), (CertStatus::Revoked, Some(Reason::KeyCompromise), 1));
    assert_eq!(nine.not_after.unix_timestamp(), expires_by.unix_timestamp());
    assert_eq!(store.next_crl_number(i64::MAX / 2).await.expect("number"), Ok(41), "numbered above the published CRL");

    // Once the database has numbered that CRL it is no longer behind it: a
    // hold lifted since (a crash before the next CRL was kept, or another
    // instance's old CRL) stays lifted.
    store.change_certificate(&crate::serial(3), Change::Release, "t", later).await.expect("release");
    let again = store.reapply_published(40, &listed, later).await.expect("reapply");
    assert_eq!(again, connect_pki_store::Reapplied::default());
    assert_eq!(status(3).await, (CertStatus::Valid, None), "a lifted hold was put back");
}
both_backends!(
    a_restored_database_takes_back_the_published_revocations,
    crate::crl::a_restored_database_takes_back_the_published_revocations
);
