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
