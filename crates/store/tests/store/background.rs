//! Background bookkeeping (relying-party counts, pruning, delivery records)
//! never waits for the writer lock on PostgreSQL, so it never queues a
//! revocation behind it; pruning goes in batches and keeps what is recent.

use connect_pki_store::testing::TestDb;
use connect_pki_store::{Backend, OcspAnswer, OcspSighting, Sightings, both_backends};
use sqlx::Connection;

fn sightings(party: &str, n: usize, last_at: i64) -> Sightings {
    Sightings {
        ocsp: (0..n)
            .map(|i| OcspSighting {
                party: party.into(),
                serial: format!("{i:032x}"),
                ca_generation: 1,
                queries: 1,
                last_at,
                last_answer: OcspAnswer::Good,
                last_good_at: Some(last_at),
                first_revoked_at: None,
                last_revoked_at: None,
            })
            .collect(),
        ..Sightings::default()
    }
}

pub(crate) async fn pruning_goes_in_batches_and_keeps_what_is_recent(db: TestDb) {
    let store = db.store().await.expect("connect");
    let old = crate::now().unix_timestamp() - 400 * 86_400;
    store.record_sightings(&sightings("old.example", 2_500, old)).await.expect("old counts");
    store.record_sightings(&sightings("new.example", 10, crate::now().unix_timestamp())).await.expect("new counts");
    let gone = store.prune_sightings(crate::now() - time::Duration::days(30)).await.expect("prune");
    assert_eq!(gone, 2_500);
    let parties = store.relying_parties().await.expect("list");
    assert_eq!(parties.iter().map(|p| p.party.as_str()).collect::<Vec<_>>(), ["new.example"], "{parties:?}");
}
both_backends!(
    pruning_goes_in_batches_and_keeps_what_is_recent,
    crate::background::pruning_goes_in_batches_and_keeps_what_is_recent
);

/// With another session holding the writer lock, the counts, the pruning and
/// a delivery record still go in at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookkeeping_does_not_wait_for_the_writer_lock_on_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await.expect("connect");
    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(&db.url).await.expect("a second session");
    for sql in ["begin", "select pg_advisory_xact_lock(7305001)"] {
        sqlx::query(sql).execute(&mut holder).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let bounded = std::time::Duration::from_secs(2);
    let batch = sightings("busy.example", 5, crate::now().unix_timestamp());
    let record = store.record_sightings(&batch);
    tokio::time::timeout(bounded, record).await.expect("the counts waited for the writer lock").expect("counts");
    let prune = store.prune_sightings(crate::now() - time::Duration::days(30));
    tokio::time::timeout(bounded, prune).await.expect("pruning waited for the writer lock").expect("prune");
    let delivery = store.record_delivery(1, "nobody", None, None, crate::now());
    let recorded = tokio::time::timeout(bounded, delivery).await.expect("a delivery record waited for the writer lock");
    assert!(!recorded.expect("record"), "no such lease: nothing recorded");
    sqlx::query("rollback").execute(&mut holder).await.expect("rollback");
}
