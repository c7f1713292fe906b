//! Running one pair on one backend, and the macro that makes a test of each
//! pair on both backends.

use std::time::Instant;

use super::checks::*;
use super::ops::*;
use super::setup::*;
use super::world::*;
use connect_pki_store::testing::TestDb;

pub(super) async fn race_pair(db: TestDb, plan: Plan) {
    let began = Instant::now();
    let backend = match db.backend() {
        connect_pki_store::Backend::Sqlite => "sqlite",
        connect_pki_store::Backend::Postgres => "postgres",
    };
    let store = db.store().await.expect("connect");
    let sql = direct_pool(&db).await;
    let worlds = setup(&store, &sql, plan).await;
    let set_up = began.elapsed();
    let mut checking = std::time::Duration::ZERO;
    let feed_mark = scalar(&sql, "select coalesce(max(id), 0) as n from cert_events").await;
    let audit_mark = scalar(&sql, "select coalesce(max(id), 0) as n from audit_log").await;
    let mut checker = Checker::new(&plan, backend, feed_mark, audit_mark);
    let mut tally = Vec::with_capacity(ROUNDS);
    for batch in worlds.chunks(ROUNDS_AT_ONCE) {
        let mut rounds = Vec::with_capacity(batch.len());
        if plan.hold_limit {
            for world in batch {
                rounds.push(race(&store, plan, world.clone()).await);
            }
        } else {
            let tasks: Vec<_> = batch
                .iter()
                .map(|world| {
                    let (store, world) = (store.clone(), world.clone());
                    tokio::spawn(async move { race(&store, plan, world).await })
                })
                .collect();
            for task in tasks {
                rounds.push(task.await.expect("round"));
            }
        }
        tally.extend(rounds.iter().map(|r| (r.calls[0].result.is_ok(), r.calls[1].result.is_ok())));
        let check_began = Instant::now();
        checker.check_batch(&store, &sql, &rounds).await;
        checking += check_began.elapsed();
    }
    let check_began = Instant::now();
    checker.check_end(&store, &sql).await;
    checking += check_began.elapsed();
    checker.timing = format!(" (setup {:.2} s, checks {:.2} s)", set_up.as_secs_f64(), checking.as_secs_f64());
    sql.close().await;
    store.close().await;
    checker.verdict(began.elapsed(), &tally);
}

/// One test per pair and backend, named after the pair; `from` starts it
/// from another state than the pair's own.
macro_rules! race_pairs {
    ($($name:ident: $a:ident vs $b:ident $(from $start:ident)?;)+) => {
        $(
            async fn $name(db: TestDb) {
                race_pair(db, Plan::new(Op::$a, Op::$b)$(.from(Start::$start))?).await
            }
            both_backends!($name, crate::races::$name);
        )+
    };
}

pub(super) use race_pairs;
