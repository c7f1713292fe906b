//! Building the worlds in bulk: everything a round starts from, inserted up
//! front in one transaction as the Store API would have written it.

use std::collections::HashMap;

use super::world::*;
use connect_pki_domain::{DeviceId, FacilityId, UserId};
use connect_pki_store::testing::TestDb;
use connect_pki_store::{BootstrapInput, Store, StoreError};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;

pub(super) fn bootstrap_input() -> BootstrapInput {
    connect_pki_store::testing::bootstrap_input("race-admin")
}

pub(super) async fn direct_pool(db: &TestDb) -> AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(2).connect(&db.url).await.expect("direct connection")
}

pub(super) async fn scalar(sql: &AnyPool, query: &str) -> i64 {
    sqlx::query(query).fetch_one(sql).await.expect(query).try_get("n").expect("n")
}

pub(super) fn id_list(ids: impl Iterator<Item = i64>) -> String {
    ids.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// When a round's setup hold began: for rounds that race the hold limit,
/// early and one second apart so that each round's limit reaches its own hold
/// only; for the others, later than any limit.
pub(super) fn held_at(plan: Plan, round: usize) -> Option<OffsetDateTime> {
    match plan.start {
        Start::Valid => None,
        Start::OnHold | Start::Escalated | Start::Suspended if plan.hold_limit => {
            Some(at(HOLD_LIMIT_HOLDS + i64::try_from(round).expect("round")))
        }
        Start::OnHold | Start::Escalated | Start::Suspended => Some(at(SETUP_HOLDS)),
    }
}

/// Inserts `rows` (SQL value tuples) into `table` and maps the `key` column of
/// each new row to its id.
pub(super) async fn insert_returning(
    tx: &mut sqlx::AnyConnection,
    table: &str,
    columns: &str,
    rows: &[String],
    key: &str,
) -> HashMap<String, i64> {
    sqlx::query(&format!("insert into {table} ({columns}) values {} returning id, {key}", rows.join(", ")))
        .fetch_all(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("insert into {table}: {e}"))
        .iter()
        .map(|row| {
            let key = match row.try_get::<String, _>(key) {
                Ok(text) => text,
                Err(_) => row.try_get::<i64, _>(key).expect(key).to_string(),
            };
            (key, row.try_get("id").expect("id"))
        })
        .collect()
}

/// Creates the worlds in one transaction: per round a facility, a user, a
/// device and a certificate in the state the round starts from, with the
/// feed rows, escalation and enrollment code that the Store API would have
/// written to get there. (Through the API this setup took longer than the
/// races themselves; the raced calls all go through it.)
pub(super) async fn setup(store: &Store, sql: &AnyPool, plan: Plan) -> Vec<World> {
    let (_, admin, _, _) = store
        .bootstrap::<StoreError>(&bootstrap_input(), at(SETUP), |_| {
            Ok(fake_cert(serial_of(KIND_ADMIN, 0, 0), at(SETUP)))
        })
        .await
        .expect("bootstrap");
    let mut tx = sql.begin().await.expect("begin setup");

    let facility_status = if plan.start == Start::Suspended { "suspended" } else { "approved" };
    let rows: Vec<String> = (0..ROUNDS)
        .map(|r| format!("('race facility {r}', 'external', '', null, '{facility_status}', {SETUP}, {SETUP})"))
        .collect();
    let columns = "name, kind, address, department, status, created_at, updated_at";
    let facilities = insert_returning(&mut tx, "facilities", columns, &rows, "name").await;
    let facility = |r: usize| facilities[&format!("race facility {r}")];

    // An invited user has no password yet; enrollment sets it and activates them.
    let (status, password) = if plan.enrollment { ("invited", "null") } else { ("active", "'$argon2id$not-checked'") };
    let rows: Vec<String> = (0..ROUNDS)
        .map(|r| {
            format!(
                "({}, 'race{r}', 'レース {r}', 'race{r}@example.test', 'staff', '{status}', {password}, {SETUP}, \
                 {SETUP})",
                facility(r)
            )
        })
        .collect();
    let columns = "facility_id, login_id, display_name, email, role, status, password_hash, created_at, updated_at";
    let users = insert_returning(&mut tx, "users", columns, &rows, "login_id").await;
    let user = |r: usize| users[&format!("race{r}")];

    let rows: Vec<String> =
        (0..ROUNDS).map(|r| format!("({}, 'race device {r}', 'active', {SETUP}, {SETUP})", user(r))).collect();
    let devices =
        insert_returning(&mut tx, "devices", "user_id, label, status, created_at, updated_at", &rows, "label").await;
    let device = |r: usize| devices[&format!("race device {r}")];

    insert_certificates(&mut tx, plan, &device).await;
    insert_suspension_holds(&mut tx, plan, &facility).await;

    let escalations = insert_escalations(&mut tx, plan, admin.id.0, &facility, &device).await;
    let codes = insert_codes(&mut tx, plan, &user).await;
    tx.commit().await.expect("commit setup");

    (0..ROUNDS)
        .map(|r| World {
            round: r,
            facility: FacilityId(facility(r)),
            user: UserId(user(r)),
            device: DeviceId(device(r)),
            serial: serial_of(KIND_WORLD, r, 0),
            admin: admin.id,
            escalation: escalations.get(&device(r).to_string()).copied(),
            code: codes.get(&user(r).to_string()).map(|&id| (id, format!("race-code-{r}"))),
            held_at: held_at(plan, r),
        })
        .collect()
}

/// Each round's certificate in the state the round starts from, with the
/// feed rows that got it there.
async fn insert_certificates(tx: &mut sqlx::AnyConnection, plan: Plan, device: &dyn Fn(usize) -> i64) {
    let not_after = SETUP + 365 * 86_400;
    let mut certificates = Vec::new();
    let mut feed = Vec::new();
    for r in 0..ROUNDS {
        let serial = serial_of(KIND_WORLD, r, 0);
        feed.push(format!("('{serial}', 'valid', null, {SETUP})"));
        let (status, reason, since) = match held_at(plan, r) {
            // What a hold, or a report's hold of the device, leaves behind.
            Some(t) => {
                let t = t.unix_timestamp();
                feed.push(format!("('{serial}', 'on_hold', 'certificateHold', {t})"));
                ("on_hold", "'certificateHold'", t.to_string())
            }
            None => ("valid", "null", "null".to_string()),
        };
        certificates.push(format!(
            "('{serial}', {}, $1, {SETUP}, {not_after}, '{status}', {reason}, {since}, {SETUP}, {SETUP})",
            device(r)
        ));
    }
    sqlx::query(&format!(
        "insert into certificates (serial, device_id, der, not_before, not_after, status, revocation_reason, \
         revoked_at, created_at, updated_at) values {}",
        certificates.join(", ")
    ))
    .bind(vec![0x30u8, 0x00])
    .execute(&mut *tx)
    .await
    .expect("insert certificates");
    // In id order per serial, as a follower reads them.
    sqlx::query(&format!("insert into cert_events (serial, status, reason, at) values {}", feed.join(", ")))
        .execute(&mut *tx)
        .await
        .expect("insert feed rows");
}

/// Per round, the escalation a report and a claim leave behind (escalated
/// plans only), by device id.
async fn insert_escalations(
    tx: &mut sqlx::AnyConnection,
    plan: Plan,
    admin: i64,
    facility: &dyn Fn(usize) -> i64,
    device: &dyn Fn(usize) -> i64,
) -> HashMap<String, i64> {
    // What open_escalation followed by claim_escalation leave behind.
    if plan.start == Start::Escalated {
        let rows: Vec<String> = (0..ROUNDS)
            .map(|r| {
                let t = held_at(plan, r).expect("held").unix_timestamp();
                format!(
                    "({}, {}, 'manager', {admin}, 'admin_division', 'claimed', 'round {r}', null, {admin}, {t}, {t}, \
                     {t})",
                    device(r),
                    facility(r),
                    admin = admin
                )
            })
            .collect();
        let columns = "device_id, facility_id, channel, reported_by, queue, status, note, escalate_at, claimed_by, \
                       claimed_at, created_at, updated_at";
        let escalations = insert_returning(tx, "escalations", columns, &rows, "device_id").await;
        // The report held the round's certificate, and recorded that it did.
        let holds: Vec<String> = (0..ROUNDS)
            .map(|r| format!("({}, '{}')", escalations[&device(r).to_string()], serial_of(KIND_WORLD, r, 0)))
            .collect();
        sqlx::query(&format!("insert into escalation_holds (escalation_id, serial) values {}", holds.join(", ")))
            .execute(&mut *tx)
            .await
            .expect("insert escalation holds");
        escalations
    } else {
        HashMap::new()
    }
}

/// Per round, the hold its facility's suspension placed and keeps
/// (suspended plans only), as change_facility_status leaves it.
async fn insert_suspension_holds(tx: &mut sqlx::AnyConnection, plan: Plan, facility: &dyn Fn(usize) -> i64) {
    if plan.start != Start::Suspended {
        return;
    }
    let rows: Vec<String> =
        (0..ROUNDS).map(|r| format!("({}, '{}', 1)", facility(r), serial_of(KIND_WORLD, r, 0))).collect();
    sqlx::query(&format!(
        "insert into suspension_holds (facility_id, serial, release_on_resume) values {}",
        rows.join(", ")
    ))
    .execute(&mut *tx)
    .await
    .expect("insert suspension holds");
}

/// Per round, an enrollment code (enrollment plans only), by user id.
async fn insert_codes(tx: &mut sqlx::AnyConnection, plan: Plan, user: &dyn Fn(usize) -> i64) -> HashMap<String, i64> {
    // What create_enrollment_code leaves behind.
    if plan.enrollment {
        let rows: Vec<String> =
            (0..ROUNDS).map(|r| format!("({}, 'race-code-{r}', {}, {SETUP})", user(r), RACE + 86_400 * 3650)).collect();
        insert_returning(tx, "enrollment_codes", "user_id, code_hash, expires_at, created_at", &rows, "user_id").await
    } else {
        HashMap::new()
    }
}
