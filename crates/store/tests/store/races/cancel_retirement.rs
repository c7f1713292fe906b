//! A manager cancels a scheduled retirement at the very instant the worker
//! finds it due. Whichever commits first wins; what must hold either way:
//!
//! - exactly one of the two did something: the cancel returned the time it
//!   cancelled and the worker found nothing due, or the worker retired the
//!   user and the cancel was refused because the user is retired — never
//!   both, never neither, never a database error;
//! - the user, device and certificate agree with the winner (active, valid,
//!   nothing scheduled; or retired, revoked affiliationChanged, nothing
//!   scheduled), and a later worker run finds nothing due;
//! - the audit log holds exactly the winner's rows for the user (the
//!   cancel; or the certificate's revocation and the retirement).

use connect_pki_domain::{CertStatus, DomainError, Reason, UserStatus};
use connect_pki_store::testing::TestDb;
use connect_pki_store::{Store, StoreError, both_backends};
use sqlx::{AnyPool, Row};

use super::setup::{direct_pool, scalar, setup};
use super::world::{Op, Plan, ROUNDS, ROUNDS_AT_ONCE, Side, World, at};

/// What one round's two calls returned.
struct Outcome {
    world: World,
    cancel: Result<time::OffsetDateTime, StoreError>,
    worker: Result<Option<Vec<connect_pki_domain::Serial>>, StoreError>,
}

async fn round(store: &Store, world: World) -> Outcome {
    let due = Side::A.time(world.round);
    let actor = format!("user:{}", world.admin);
    let cancel = store.cancel_retirement(world.user, &actor, due);
    let worker = store.retire_if_due(world.user, due);
    // Which call is polled first alternates: SQLite's in-process writer
    // queue would otherwise hand the lock to the same side every round.
    let (cancel, worker) = if world.round.is_multiple_of(2) {
        tokio::join!(cancel, worker)
    } else {
        let (worker, cancel) = tokio::join!(worker, cancel);
        (cancel, worker)
    };
    Outcome { world, cancel, worker }
}

async fn audit_actions(sql: &AnyPool, user: i64, mark: i64) -> Vec<String> {
    sqlx::query("select action from audit_log where user_id = $1 and id > $2 order by id")
        .bind(user)
        .bind(mark)
        .fetch_all(sql)
        .await
        .expect("audit rows")
        .iter()
        .map(|r| r.try_get("action").expect("action"))
        .collect()
}

/// What is wrong with one round, if anything; `Ok(true)` when the cancel won.
async fn check(store: &Store, sql: &AnyPool, mark: i64, o: &Outcome) -> Result<bool, String> {
    let w = &o.world;
    let user = store.user(w.user).await.expect("user").expect("exists");
    let scheduled = store.retire_at(w.user).await.expect("retire_at");
    let cert = store.certificate(&w.serial).await.expect("certificate").expect("exists");
    let device = store.device(w.device).await.expect("device").expect("exists");
    let audit = audit_actions(sql, w.user.0, mark).await;
    let state = format!(
        "cancel {:?}, worker {:?}; user {}, scheduled {scheduled:?}, certificate {}/{:?}, device {}, audit {audit:?}",
        o.cancel, o.worker, user.status, cert.status, cert.reason, device.status
    );
    let refused_as_retired = matches!(
        &o.cancel,
        Err(StoreError::Rule(DomainError::InvalidTransition { from: "retired", to: "retirement cancelled" }))
    );
    let cancel_won = match (&o.cancel, &o.worker) {
        (Ok(at), Ok(None)) if *at == Side::A.time(w.round) => true,
        (_, Ok(Some(revoked))) if refused_as_retired && revoked == std::slice::from_ref(&w.serial) => false,
        _ => return Err(format!("not exactly one winner: {state}")),
    };
    let consistent = if cancel_won {
        user.status == UserStatus::Active
            && cert.status == CertStatus::Valid
            && device.status == connect_pki_domain::DeviceStatus::Active
            && audit == ["user.retire_cancelled"]
    } else {
        user.status == UserStatus::Retired
            && cert.status == CertStatus::Revoked
            && cert.reason == Some(Reason::AffiliationChanged)
            && device.status == connect_pki_domain::DeviceStatus::Retired
            && audit == ["certificate.revoke", "user.retire"]
    };
    if !consistent || scheduled.is_some() {
        return Err(format!("the records do not match the winner: {state}"));
    }
    Ok(cancel_won)
}

async fn cancel_vs_due_retirement(db: TestDb) {
    let began = std::time::Instant::now();
    let store = db.store().await.expect("connect");
    let sql = direct_pool(&db).await;
    let worlds = setup(&store, &sql, Plan::new(Op::Retire, Op::Retire)).await;
    for w in &worlds {
        let due = Side::A.time(w.round);
        store
            .schedule_retirement(
                w.user,
                due,
                false,
                "test:setup",
                connect_pki_domain::user::Departure::Allowed,
                at(super::world::SETUP),
            )
            .await
            .expect("schedule");
    }
    let mark = scalar(&sql, "select coalesce(max(id), 0) as n from audit_log").await;
    let (mut failures, mut cancelled) = (Vec::new(), 0);
    for batch in worlds.chunks(ROUNDS_AT_ONCE) {
        let tasks: Vec<_> = batch
            .iter()
            .map(|w| {
                let (store, w) = (store.clone(), w.clone());
                tokio::spawn(async move { round(&store, w).await })
            })
            .collect();
        for task in tasks {
            let o = task.await.expect("round");
            match check(&store, &sql, mark, &o).await {
                Ok(won) => cancelled += usize::from(won),
                Err(e) => failures.push(format!("round {}: {e}", o.world.round)),
            }
        }
    }
    // Nothing is left for a later worker run: cancelled retirements stay cancelled.
    let later = at(super::world::RACE + 100_000);
    let due = store.due_retirements(later).await.expect("due");
    if !due.is_empty() {
        failures.push(format!("still due after the race: {due:?}"));
    }
    eprintln!(
        "cancel vs due retirement on {:?}: {cancelled} cancelled, {} retired, {:.2} s",
        db.backend(),
        ROUNDS - cancelled,
        began.elapsed().as_secs_f64()
    );
    sql.close().await;
    store.close().await;
    assert!(failures.is_empty(), "{} of {ROUNDS} rounds failed:\n{}", failures.len(), failures.join("\n"));
}
both_backends!(cancel_vs_due_retirement, crate::races::cancel_retirement::cancel_vs_due_retirement);
