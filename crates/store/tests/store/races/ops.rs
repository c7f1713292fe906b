//! The raced operations: one call through the Store API per side, two sides
//! let go at once.

use std::sync::Arc;

use super::world::*;
use connect_pki_domain::certificate::Change;
use connect_pki_domain::enrollment::DEFAULT_RENEWALS_PER_HOUR;
use connect_pki_domain::renewal::{Handover, Terms};

const API_RENEWAL: Terms = Terms { per_hour: DEFAULT_RENEWALS_PER_HOUR, handover: Handover::Now };
use connect_pki_domain::escalation::{Outcome, Queue};
use connect_pki_domain::{FacilityStatus, Reason};
use connect_pki_store::{NewEscalation, Redemption, Store, StoreError};
use tokio::sync::Barrier;

pub(super) fn report(world: &World, actor: &str) -> NewEscalation {
    NewEscalation {
        device: world.device,
        channel: "manager",
        reported_by: Some(world.admin),
        queue: Queue::AdminDivision,
        escalate_at: None,
        note: format!("round {}", world.round),
        actor: actor.into(),
        notify: Vec::new(),
        payload: "{}".into(),
        phone_call: None,
    }
}

pub(super) async fn run_call(store: Store, world: World, op: Op, side: Side, start: Arc<Barrier>) -> Call {
    let now = side.time(world.round);
    let actor = format!("race:{side:?}");
    let change = |change| {
        let (store, serial, actor) = (store.clone(), world.serial.clone(), actor.clone());
        async move {
            store
                .change_certificate(&serial, change, &actor, now)
                .await
                .map(|c| Effect::Status { status: c.certificate.status, changed: c.changed })
        }
    };
    start.wait().await;
    let result = match op {
        Op::Revoke => change(Change::Revoke(Reason::KeyCompromise)).await,
        Op::Hold => change(Change::Hold).await,
        Op::Release => change(Change::Release).await,
        Op::Lost => store.device_lost(world.device, &actor, now).await.map(Effect::Changed),
        Op::Retire => store
            .retire_user(world.user, &actor, connect_pki_domain::user::Departure::Allowed, false, now)
            .await
            .map(Effect::Changed),
        Op::Close => store
            .change_facility_status(world.facility, FacilityStatus::Closed, &actor, now)
            .await
            .map(|c| Effect::Changed(c.revoked)),
        Op::Suspend => store
            .change_facility_status(world.facility, FacilityStatus::Suspended, &actor, now)
            .await
            .map(|c| Effect::Changed(c.held)),
        Op::Resume => store
            .change_facility_status(world.facility, FacilityStatus::Approved, &actor, now)
            .await
            .map(|c| Effect::Changed(c.released)),
        Op::Renew => {
            let new = fake_cert(serial_of(KIND_RENEWAL, world.round, side.byte()), now);
            store
                // Each round renews a fresh device once: the hourly limit never bites here.
                .renew_certificate::<StoreError>(&world.serial, API_RENEWAL, &actor, now, |_| Ok(new))
                .await
                .map(|(_, c)| Effect::Issued(c.serial))
        }
        Op::ResolveReleased | Op::ResolveRevoked => {
            let outcome = if op == Op::ResolveReleased { Outcome::Released } else { Outcome::Revoked };
            let id = world.escalation.expect("an escalated world");
            store.resolve_escalation(id, outcome, world.admin, "race", now).await.map(|(_, s)| Effect::Changed(s))
        }
        Op::HoldLimit => {
            let held_before = world.held_at.expect("a held world");
            store.revoke_expired_holds(held_before, now).await.map(Effect::Changed)
        }
        Op::Enroll => {
            let (code_id, secret_hash) = world.code.clone().expect("a world with an enrollment code");
            let redemption = Redemption {
                code_id,
                secret_hash,
                password_hash: Some("$argon2id$not-checked".into()),
                device_label: format!("enrolled {side:?}"),
                actor: format!("public:127.0.0.{}", side.byte()),
                channel: connect_pki_domain::enrollment::Channel::ByHand,
            };
            let new = fake_cert(serial_of(KIND_ENROLLMENT, world.round, side.byte()), now);
            store
                .redeem_enrollment_code::<StoreError>(&redemption, now, |_| Ok(new))
                .await
                .map(|(_, c)| Effect::Issued(c.serial))
        }
        // A hold taken over from the facility's suspension changes nothing:
        // only what the report put on hold is a change (d).
        Op::Report => store.open_escalation(&report(&world, &actor), now).await.map(|o| Effect::Changed(o.held)),
    };
    Call { op, side, at: now, result }
}

pub(super) async fn race(store: &Store, plan: Plan, world: World) -> Round {
    let start = Arc::new(Barrier::new(2));
    let call = |op, side| tokio::spawn(run_call(store.clone(), world.clone(), op, side, start.clone()));
    // Which call gets going first depends on the order they were spawned in
    // (SQLite queues its writers in arrival order): alternate it.
    let (a, b) = if world.round.is_multiple_of(2) {
        let a = call(plan.a, Side::A);
        (a, call(plan.b, Side::B))
    } else {
        let b = call(plan.b, Side::B);
        (call(plan.a, Side::A), b)
    };
    let (a, b) = (a.await.expect("call A"), b.await.expect("call B"));
    Round { world, calls: [a, b] }
}
