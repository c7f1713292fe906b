//! Races between the operations that decide a certificate's fate (issue
//! "Revocation that no race can undo").
//!
//! Every unordered pair of revoke, hold, release, lost device, retirement,
//! facility close, renewal, escalation resolved (released and revoked), hold
//! limit, enrollment and emergency report — plus facility suspension against
//! enrollment and renewal — runs concurrently `ROUNDS` times on each backend,
//! in a database of its own. Either call may win a round; what must hold
//! whichever commits first:
//!
//! - (a) the certificate rows, a freshly loaded `certificate_index()` and an
//!   index built by following `events_after` agree on status and reason;
//! - (b) a revocation that returned Ok left the certificate revoked (or
//!   superseded), a call's Ok reports the state it asked for, and every
//!   certificate's feed is a legal lifecycle that never leaves revoked or
//!   superseded and never repeats a status (a row for a change that did not
//!   happen);
//! - (c) nothing valid or on hold belongs to a lost device, a retired user or
//!   a closed facility, those stay lost, retired and closed, and no
//!   certificate issued after a suspension, closure, loss or retirement
//!   committed is valid;
//! - (d) audit rows and returned lists match the real changes one for one;
//! - (e) no raced call fails with a database error: the store settles a race
//!   itself instead of handing it to the caller as a server error.
//!
//! Rounds stay cheap because each has a world of its own — facility, user,
//! device, certificate, and the hold, claimed escalation or enrollment code it
//! starts from — all inserted up front in one transaction, as the Store API
//! would have written them; only the raced calls go through the API,
//! `ROUNDS_AT_ONCE` rounds side by side. Each raced call gets a timestamp of
//! its own, so every feed and audit row can be traced to the call that wrote
//! it, and audit ids, taken in commit order, tell which call committed first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use connect_pki_domain::certificate::Change;
use connect_pki_domain::escalation::{Outcome, Queue};
use connect_pki_domain::{
    CertStatus, DeviceId, FacilityId, FacilityKind, FacilityStatus, Reason, Role, Serial, UserId,
};
use connect_pki_store::testing::TestDb;
use connect_pki_store::{
    AuditFilter, AuditRecord, BootstrapInput, CertEvent, NewCertificate, NewEscalation, NewFacility, NewUser,
    Redemption, Store, StoreError, both_backends,
};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;
use tokio::sync::Barrier;

/// Rounds per pair and backend (the issue asks for at least 200).
const ROUNDS: usize = 200;
/// Rounds raced side by side (two calls each), checked together afterwards.
const ROUNDS_AT_ONCE: usize = 20;
/// Feed and audit rows read per request.
const PAGE: i64 = 10_000;

/// When the worlds are created.
const SETUP: i64 = 1_780_000_000;
/// Holds of rounds that race the hold limit begin here plus the round, so that
/// a round's limit reaches its own hold and no later round's.
const HOLD_LIMIT_HOLDS: i64 = 1_781_000_000;
/// Holds of every other round: later than any hold limit's cut-off.
const SETUP_HOLDS: i64 = 1_785_000_000;
/// Raced calls run at this plus ten seconds a round plus one for A, two for B.
const RACE: i64 = 1_790_000_000;

/// Serial kinds (second byte): the bootstrap admin's, a world's, a renewal's
/// and an enrollment's. The round is in bytes 2–3 so a stray certificate names it.
const KIND_ADMIN: u8 = 0x10;
const KIND_WORLD: u8 = 0x11;
const KIND_RENEWAL: u8 = 0x12;
const KIND_ENROLLMENT: u8 = 0x13;

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("valid time")
}

fn serial_of(kind: u8, round: usize, side: u8) -> Serial {
    let r = u16::try_from(round).expect("round fits two bytes").to_be_bytes();
    Serial::from_bytes(&[0x40, kind, r[0], r[1], side, 0x01]).expect("serial")
}

fn round_of(serial: &Serial) -> Option<usize> {
    let b = serial.as_bytes();
    (b.len() == 6 && b[0] == 0x40 && b[1] != KIND_ADMIN).then(|| usize::from(u16::from_be_bytes([b[2], b[3]])))
}

fn fake_cert(serial: Serial, issued: OffsetDateTime) -> NewCertificate {
    NewCertificate {
        der: vec![0x30, serial.as_bytes()[1], serial.as_bytes()[3]],
        serial,
        not_before: issued,
        not_after: issued + time::Duration::days(365),
    }
}

/// Whether a certificate in this state still identifies its holder to anyone.
fn live(status: CertStatus) -> bool {
    matches!(status, CertStatus::Valid | CertStatus::OnHold)
}

/// Whether a certificate ends revoked for good (superseded is published as
/// revoked too); `None` when it does not exist at all.
fn revoked(status: Option<CertStatus>) -> bool {
    matches!(status, Some(CertStatus::Revoked | CertStatus::Superseded))
}

fn legal_step(from: CertStatus, to: CertStatus) -> bool {
    use CertStatus::*;
    matches!((from, to), (Valid, OnHold) | (Valid, Revoked) | (Valid, Superseded) | (OnHold, Valid) | (OnHold, Revoked))
}

fn shown(status: CertStatus, reason: Option<Reason>) -> String {
    match reason {
        Some(r) => format!("{status}/{r}"),
        None => format!("{status}/-"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Revoke,
    Hold,
    Release,
    Lost,
    Retire,
    Close,
    Suspend,
    Renew,
    ResolveReleased,
    ResolveRevoked,
    HoldLimit,
    Enroll,
    Report,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Revoke => "revoke",
            Op::Hold => "hold",
            Op::Release => "release",
            Op::Lost => "lost device",
            Op::Retire => "retirement",
            Op::Close => "facility close",
            Op::Suspend => "facility suspend",
            Op::Renew => "renewal",
            Op::ResolveReleased => "escalation released",
            Op::ResolveRevoked => "escalation revoked",
            Op::HoldLimit => "hold limit",
            Op::Enroll => "enrollment",
            Op::Report => "emergency report",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn byte(self) -> u8 {
        match self {
            Side::A => 0x0a,
            Side::B => 0x0b,
        }
    }

    fn time(self, round: usize) -> OffsetDateTime {
        let offset = match self {
            Side::A => 1,
            Side::B => 2,
        };
        at(RACE + 10 * i64::try_from(round).expect("round") + offset)
    }
}

/// What the certificate looks like when the race starts: release and the
/// hold limit need a hold, resolving needs a claimed escalation (whose report
/// put the device's certificate on hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Valid,
    OnHold,
    Escalated,
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    a: Op,
    b: Op,
    start: Start,
    /// The world's user is invited and has an enrollment code.
    enrollment: bool,
    /// Rounds run one after another: the hold limit revokes every hold older
    /// than its cut-off, so a round must not see another round's hold.
    hold_limit: bool,
}

impl Plan {
    fn new(a: Op, b: Op) -> Self {
        let any = |op| a == op || b == op;
        let start = if any(Op::ResolveReleased) || any(Op::ResolveRevoked) {
            Start::Escalated
        } else if any(Op::Release) || any(Op::HoldLimit) {
            Start::OnHold
        } else {
            Start::Valid
        };
        Plan { a, b, start, enrollment: any(Op::Enroll), hold_limit: any(Op::HoldLimit) }
    }

    fn name(&self) -> String {
        format!("{} vs {}", self.a.name(), self.b.name())
    }
}

/// One round's own facility, user, device and certificate.
#[derive(Debug, Clone)]
struct World {
    round: usize,
    facility: FacilityId,
    user: UserId,
    device: DeviceId,
    serial: Serial,
    admin: UserId,
    escalation: Option<i64>,
    /// Enrollment code id and secret hash.
    code: Option<(i64, String)>,
    /// When the setup hold began, if there is one.
    held_at: Option<OffsetDateTime>,
}

#[derive(Debug)]
enum Effect {
    /// `change_certificate`: the status it reported and whether it changed it.
    Status { status: CertStatus, changed: bool },
    /// The certificates the call says it changed.
    Changed(Vec<Serial>),
    /// The certificate the call issued.
    Issued(Serial),
}

#[derive(Debug)]
struct Call {
    op: Op,
    side: Side,
    at: OffsetDateTime,
    result: Result<Effect, StoreError>,
}

impl Call {
    fn describe(&self) -> String {
        let result = match &self.result {
            Ok(effect) => format!("Ok({effect:?})"),
            Err(e) => format!("Err({e})"),
        };
        format!("{:?}={}@{} -> {result}", self.side, self.op.name(), self.at.unix_timestamp())
    }
}

struct Round {
    world: World,
    calls: [Call; 2],
}

fn bootstrap_input() -> BootstrapInput {
    BootstrapInput {
        facility: NewFacility {
            name: "千歳市 総務部行政管理課".into(),
            kind: FacilityKind::Internal,
            address: "千歳市東雲町2丁目34番地".into(),
            department: None,
        },
        admin: NewUser {
            login_id: "race-admin".into(),
            display_name: "情報システム係".into(),
            email: "it@example.test".into(),
            role: Role::AdminDivision,
        },
        device_label: "bootstrap".into(),
    }
}

async fn direct_pool(db: &TestDb) -> AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(2).connect(&db.url).await.expect("direct connection")
}

async fn scalar(sql: &AnyPool, query: &str) -> i64 {
    sqlx::query(query).fetch_one(sql).await.expect(query).try_get("n").expect("n")
}

fn id_list(ids: impl Iterator<Item = i64>) -> String {
    ids.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// When a round's setup hold began: for rounds that race the hold limit,
/// early and one second apart so that each round's limit reaches its own hold
/// only; for the others, later than any limit.
fn held_at(plan: Plan, round: usize) -> Option<OffsetDateTime> {
    match plan.start {
        Start::Valid => None,
        Start::OnHold | Start::Escalated if plan.hold_limit => {
            Some(at(HOLD_LIMIT_HOLDS + i64::try_from(round).expect("round")))
        }
        Start::OnHold | Start::Escalated => Some(at(SETUP_HOLDS)),
    }
}

/// Inserts `rows` (SQL value tuples) into `table` and maps the `key` column of
/// each new row to its id.
async fn insert_returning(
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
async fn setup(store: &Store, sql: &AnyPool, plan: Plan) -> Vec<World> {
    let (_, admin, _, _) = store
        .bootstrap::<StoreError, _>(&bootstrap_input(), at(SETUP), |_| {
            Ok(fake_cert(serial_of(KIND_ADMIN, 0, 0), at(SETUP)))
        })
        .await
        .expect("bootstrap");
    let mut tx = sql.begin().await.expect("begin setup");

    let rows: Vec<String> = (0..ROUNDS)
        .map(|r| format!("('race facility {r}', 'external', '', null, 'approved', {SETUP}, {SETUP})"))
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

    // What open_escalation followed by claim_escalation leave behind.
    let escalations = if plan.start == Start::Escalated {
        let rows: Vec<String> = (0..ROUNDS)
            .map(|r| {
                let t = held_at(plan, r).expect("held").unix_timestamp();
                format!(
                    "({}, {}, 'manager', {admin}, 'admin_division', 'claimed', 'round {r}', null, {admin}, {t}, {t}, \
                     {t})",
                    device(r),
                    facility(r),
                    admin = admin.id.0
                )
            })
            .collect();
        let columns = "device_id, facility_id, channel, reported_by, queue, status, note, escalate_at, claimed_by, \
                       claimed_at, created_at, updated_at";
        insert_returning(&mut tx, "escalations", columns, &rows, "device_id").await
    } else {
        HashMap::new()
    };

    // What create_enrollment_code leaves behind.
    let codes = if plan.enrollment {
        let rows: Vec<String> =
            (0..ROUNDS).map(|r| format!("({}, 'race-code-{r}', {}, {SETUP})", user(r), RACE + 86_400 * 3650)).collect();
        insert_returning(&mut tx, "enrollment_codes", "user_id, code_hash, expires_at, created_at", &rows, "user_id")
            .await
    } else {
        HashMap::new()
    };
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

fn report(world: &World, actor: &str) -> NewEscalation {
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
    }
}

async fn run_call(store: Store, world: World, op: Op, side: Side, start: Arc<Barrier>) -> Call {
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
        Op::Retire => store.retire_user(world.user, &actor, now).await.map(Effect::Changed),
        Op::Close | Op::Suspend => {
            let to = if op == Op::Close { FacilityStatus::Closed } else { FacilityStatus::Suspended };
            store.change_facility_status(world.facility, to, &actor, now).await.map(|c| Effect::Changed(c.revoked))
        }
        Op::Renew => {
            let new = fake_cert(serial_of(KIND_RENEWAL, world.round, side.byte()), now);
            store
                .renew_certificate::<StoreError, _>(&world.serial, &actor, now, |_| Ok(new))
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
            };
            let new = fake_cert(serial_of(KIND_ENROLLMENT, world.round, side.byte()), now);
            store
                .redeem_enrollment_code::<StoreError, _>(&redemption, now, |_| Ok(new))
                .await
                .map(|(_, c)| Effect::Issued(c.serial))
        }
        Op::Report => store.open_escalation(&report(&world, &actor), now).await.map(|(_, held)| Effect::Changed(held)),
    };
    Call { op, side, at: now, result }
}

async fn race(store: &Store, plan: Plan, world: World) -> Round {
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

/// One certificate row as the database has it.
#[derive(Debug, Clone)]
struct CertRow {
    status: CertStatus,
    reason: Option<Reason>,
    revoked_at: i64,
    device: i64,
    user: i64,
}

/// What the checks of one batch read, after its rounds have all finished.
struct Snapshot {
    certs: BTreeMap<Serial, CertRow>,
    index: HashMap<Serial, (CertStatus, Option<Reason>)>,
    devices: HashMap<i64, String>,
    users: HashMap<i64, String>,
    facilities: HashMap<i64, String>,
}

impl Snapshot {
    async fn read(store: &Store, sql: &AnyPool, worlds: &[&World]) -> Self {
        let users = id_list(worlds.iter().map(|w| w.user.0));
        let certs = sqlx::query(&format!(
            "select c.serial, c.status, c.revocation_reason, coalesce(c.revoked_at, 0) as revoked_at, c.device_id, \
             d.user_id from certificates c join devices d on d.id = c.device_id where d.user_id in ({users})"
        ))
        .fetch_all(sql)
        .await
        .expect("certificate rows")
        .iter()
        .map(|row| {
            let text = |col: &str| row.try_get::<String, _>(col).expect(col);
            let reason: Option<String> = row.try_get("revocation_reason").expect("revocation_reason");
            let row = CertRow {
                status: text("status").parse().expect("status"),
                reason: reason.map(|r| r.parse().expect("reason")),
                revoked_at: row.try_get("revoked_at").expect("revoked_at"),
                device: row.try_get("device_id").expect("device_id"),
                user: row.try_get("user_id").expect("user_id"),
            };
            (text("serial").parse().expect("serial"), row)
        })
        .collect();
        let (_, entries) = store.certificate_index().await.expect("certificate index");
        let index = entries.into_iter().map(|e| (e.serial, (e.status, e.reason))).collect();
        let (mut devices, mut users, mut facilities) = (HashMap::new(), HashMap::new(), HashMap::new());
        let rows = sqlx::query(&format!(
            "select d.id as d_id, d.status as d_status, u.id as u_id, u.status as u_status, f.id as f_id, \
             f.status as f_status from devices d join users u on u.id = d.user_id \
             join facilities f on f.id = u.facility_id where d.id in ({})",
            id_list(worlds.iter().map(|w| w.device.0))
        ))
        .fetch_all(sql)
        .await
        .expect("device, user and facility statuses");
        for row in &rows {
            let id = |col: &str| row.try_get::<i64, _>(col).expect(col);
            let status = |col: &str| row.try_get::<String, _>(col).expect(col);
            devices.insert(id("d_id"), status("d_status"));
            users.insert(id("u_id"), status("u_status"));
            facilities.insert(id("f_id"), status("f_status"));
        }
        Snapshot { certs, index, devices, users, facilities }
    }
}

/// Follows the feed and the audit log as they grow, checks each batch of
/// rounds, and keeps what failed.
struct Checker {
    pair: String,
    backend: &'static str,
    /// Feed rows up to this id were written by the setup.
    feed_mark: i64,
    /// Every feed row so far, per serial in id order: the follower's view.
    feed: HashMap<Serial, Vec<CertEvent>>,
    feed_cursor: i64,
    /// Audit rows written after the setup with outcome ok, per target.
    audit: HashMap<String, Vec<AuditRecord>>,
    /// Per serial, the audit rows that claim a status change of it.
    claims: HashMap<String, Vec<Claim>>,
    audit_cursor: i64,
    offenders_seen: HashSet<Serial>,
    failures: Vec<String>,
    per_check: BTreeMap<&'static str, usize>,
    failed_rounds: BTreeSet<usize>,
    /// Where the time went, for the summary line.
    timing: String,
}

/// An audit row saying that a certificate changed: when (the calling
/// operation's own time) and to what.
#[derive(Debug, Clone)]
struct Claim {
    id: i64,
    at: i64,
    to: CertStatus,
    /// Named in an escalation's resolution rather than in a certificate row.
    via_escalation: bool,
}

const A: &str = "(a) database, index and feed agree";
const B: &str = "(b) lifecycle holds and Ok means done";
const C: &str = "(c) nothing live for the lost, retired, closed or suspended";
const D: &str = "(d) audit rows and reported lists match real changes";
const E: &str = "(e) no database error reaches the caller";

impl Checker {
    fn new(plan: &Plan, backend: &'static str, feed_mark: i64, audit_mark: i64) -> Self {
        Checker {
            pair: plan.name(),
            backend,
            feed_mark,
            feed: HashMap::new(),
            feed_cursor: 0,
            audit: HashMap::new(),
            claims: HashMap::new(),
            audit_cursor: audit_mark,
            offenders_seen: HashSet::new(),
            failures: Vec::new(),
            per_check: BTreeMap::new(),
            failed_rounds: BTreeSet::new(),
            timing: String::new(),
        }
    }

    fn fail(&mut self, check: &'static str, round: Option<&Round>, round_no: Option<usize>, what: String) {
        *self.per_check.entry(check).or_default() += 1;
        let context = match round {
            Some(r) => format!(" [{} | {}]", r.calls[0].describe(), r.calls[1].describe()),
            None => String::new(),
        };
        let which = round.map(|r| r.world.round).or(round_no);
        if let Some(n) = which {
            self.failed_rounds.insert(n);
        }
        let which = which.map_or_else(|| "after all rounds".to_string(), |n| format!("round {n}"));
        if self.failures.len() < 2000 {
            self.failures.push(format!("{} [{}] {which}: {check}: {what}{context}", self.pair, self.backend));
        }
    }

    async fn follow(&mut self, store: &Store) {
        loop {
            let events = store.events_after(self.feed_cursor, PAGE).await.expect("feed");
            let Some(last) = events.last() else { break };
            self.feed_cursor = last.id;
            let full = events.len() == usize::try_from(PAGE).expect("page");
            for e in events {
                self.feed.entry(e.serial.clone()).or_default().push(e);
            }
            if !full {
                break;
            }
        }
        loop {
            let filter = AuditFilter { after_id: self.audit_cursor, limit: PAGE, ..AuditFilter::default() };
            let records = store.audit_page(&filter).await.expect("audit page");
            let Some(last) = records.last() else { break };
            self.audit_cursor = last.id;
            let full = records.len() == usize::try_from(PAGE).expect("page");
            for record in records {
                if record.entry.outcome != "ok" {
                    continue;
                }
                let (id, at) = (record.id, record.at.unix_timestamp());
                let to = match record.entry.action.as_str() {
                    "certificate.revoke" => Some(CertStatus::Revoked),
                    "certificate.hold" => Some(CertStatus::OnHold),
                    "certificate.release" => Some(CertStatus::Valid),
                    "certificate.renew" => Some(CertStatus::Superseded),
                    _ => None,
                };
                if let Some(to) = to
                    && let Some(serial) = record.entry.target.strip_prefix("certificate:")
                {
                    let claim = Claim { id, at, to, via_escalation: false };
                    self.claims.entry(serial.to_string()).or_default().push(claim);
                }
                // A resolution as released names the certificates it released;
                // it is their record where no certificate.release row is written.
                if record.entry.action == "escalation.resolve" && record.entry.detail["outcome"] == "released" {
                    for serial in record.entry.detail["certificates"].as_array().into_iter().flatten() {
                        let serial = serial.as_str().expect("serial in an escalation record").to_string();
                        let claim = Claim { id, at, to: CertStatus::Valid, via_escalation: true };
                        self.claims.entry(serial).or_default().push(claim);
                    }
                }
                self.audit.entry(record.entry.target.clone()).or_default().push(record);
            }
            if !full {
                break;
            }
        }
    }

    async fn check_batch(&mut self, store: &Store, sql: &AnyPool, rounds: &[Round]) {
        self.follow(store).await;
        let worlds: Vec<&World> = rounds.iter().map(|r| &r.world).collect();
        let snapshot = Snapshot::read(store, sql, &worlds).await;
        for round in rounds {
            self.check_round(round, &snapshot);
        }
        // (c) across the whole database: a stray certificate names its round.
        let offenders = store.consistency_offenders().await.expect("consistency offenders");
        for offender in offenders {
            if self.offenders_seen.insert(offender.serial.clone()) {
                let round_no = round_of(&offender.serial);
                let round = rounds.iter().find(|r| Some(r.world.round) == round_no);
                let what = format!("certificate {} is live although {}", offender.serial, offender.why);
                self.fail(C, round, round_no, what);
            }
        }
    }

    fn check_round(&mut self, round: &Round, snap: &Snapshot) {
        let mut failed: Vec<(&'static str, String)> = Vec::new();
        let w = &round.world;
        let mine: Vec<(&Serial, &CertRow)> = snap.certs.iter().filter(|(_, c)| c.user == w.user.0).collect();
        let status_of = |serial: &Serial| snap.certs.get(serial).map(|c| c.status);
        let no_events = Vec::new();
        let feed_of = |serial: &Serial| self.feed.get(serial).unwrap_or(&no_events);

        for (serial, row) in &mine {
            // (a) three views of one certificate.
            let db = (row.status, row.reason);
            match snap.index.get(*serial) {
                Some(&(status, reason)) if (status, reason) == db => {}
                Some(&(status, reason)) => failed.push((
                    A,
                    format!(
                        "{serial}: database says {}, certificate_index says {}",
                        shown(db.0, db.1),
                        shown(status, reason)
                    ),
                )),
                None => failed.push((A, format!("{serial}: certificate_index does not list it"))),
            }
            let events = feed_of(serial);
            match events.last() {
                Some(e) if (e.status, e.reason) == db => {}
                Some(e) => failed.push((
                    A,
                    format!(
                        "{serial}: database says {}, a follower of the feed says {} (last row #{})",
                        shown(db.0, db.1),
                        shown(e.status, e.reason),
                        e.id
                    ),
                )),
                None => failed.push((A, format!("{serial}: no feed row at all"))),
            }
            // (b) the feed is a legal lifecycle with no row for a non-change.
            if let Some(first) = events.first()
                && first.status != CertStatus::Valid
            {
                failed.push((B, format!("{serial}: the feed starts with {} (#{})", first.status, first.id)));
            }
            for step in events.windows(2) {
                let (from, to) = (&step[0], &step[1]);
                if from.status == to.status {
                    failed.push((
                        B,
                        format!(
                            "{serial}: feed row #{} repeats {} of #{}: a row for a change that did not happen",
                            to.id, to.status, from.id
                        ),
                    ));
                } else if !legal_step(from.status, to.status) {
                    failed.push((
                        B,
                        format!(
                            "{serial}: the feed goes from {} (#{}) to {} (#{})",
                            from.status, from.id, to.status, to.id
                        ),
                    ));
                }
            }
            // (d) one audit claim per real change after the setup, made by
            // the same call (same time) and naming the same new status.
            let mut changes: Vec<(i64, &str)> = events
                .windows(2)
                .filter(|s| s[1].id > self.feed_mark && s[1].status != s[0].status)
                .map(|s| (s[1].at.unix_timestamp(), s[1].status.as_str()))
                .collect();
            let claims = self.claims.get(&serial.to_hex()).map(Vec::as_slice).unwrap_or(&[]);
            let mut claimed: Vec<(i64, &str)> = claims
                .iter()
                .filter(|c| {
                    !c.via_escalation || !claims.iter().any(|o| !o.via_escalation && o.at == c.at && o.to == c.to)
                })
                .map(|c| (c.at, c.to.as_str()))
                .collect();
            changes.sort();
            claimed.sort();
            if changes != claimed {
                let listed: Vec<String> = claims.iter().map(|c| format!("#{} {}@{}", c.id, c.to, c.at)).collect();
                failed.push((
                    D,
                    format!(
                        "{serial}: the feed shows {} real changes {changes:?} but the audit log claims {claimed:?} \
                         (rows [{}])",
                        changes.len(),
                        listed.join(", ")
                    ),
                ));
            }
        }

        let written_by = |call: &Call| -> Vec<(Serial, CertStatus)> {
            let mut rows = Vec::new();
            for (serial, _) in &mine {
                for e in feed_of(serial) {
                    if e.at == call.at && e.id > self.feed_mark {
                        rows.push(((*serial).clone(), e.status));
                    }
                }
            }
            rows
        };
        let live_of = |pick: &dyn Fn(&CertRow) -> bool| -> Vec<String> {
            mine.iter().filter(|(_, c)| pick(c) && live(c.status)).map(|(s, c)| format!("{s} ({})", c.status)).collect()
        };

        for call in &round.calls {
            let op = call.op.name();
            let written = written_by(call);
            let effect = match &call.result {
                Err(e) => {
                    if !matches!(e, StoreError::Rule(_) | StoreError::Conflict(_) | StoreError::Enrollment(_)) {
                        failed.push((E, format!("{op} failed with: {e}")));
                    }
                    if !written.is_empty() {
                        failed.push((D, format!("{op} failed yet feed rows carry its time: {written:?}")));
                    }
                    continue;
                }
                Ok(effect) => effect,
            };
            match effect {
                Effect::Status { status, changed } => {
                    let (wanted, label): (fn(CertStatus) -> bool, &str) = match call.op {
                        Op::Revoke => (|s| matches!(s, CertStatus::Revoked | CertStatus::Superseded), "revoked"),
                        Op::Hold => (|s| s == CertStatus::OnHold, "on_hold"),
                        _ => (|s| s == CertStatus::Valid, "valid"),
                    };
                    if !wanted(*status) {
                        failed.push((B, format!("{op} returned Ok but reports the certificate {status}, not {label}")));
                    }
                    let final_status = status_of(&w.serial);
                    if call.op == Op::Revoke && !revoked(final_status) {
                        failed.push((
                            B,
                            format!(
                                "revoke returned Ok (changed: {changed}) but the certificate ends {final_status:?}"
                            ),
                        ));
                    }
                    let expected_rows = usize::from(*changed);
                    if written.len() != expected_rows || written.iter().any(|(_, s)| !wanted(*s)) {
                        failed.push((
                            D,
                            format!("{op} returned changed: {changed} and wrote these feed rows: {written:?}"),
                        ));
                    }
                }
                Effect::Changed(listed) => {
                    let listed: BTreeSet<&Serial> = listed.iter().collect();
                    let wrote: BTreeSet<&Serial> = written.iter().map(|(s, _)| s).collect();
                    if listed != wrote || written.len() != wrote.len() {
                        failed.push((D, format!("{op} reports {listed:?} as changed but wrote feed rows {written:?}")));
                    }
                    match call.op {
                        Op::Lost | Op::ResolveRevoked => {
                            let device = snap.devices.get(&w.device.0).map(String::as_str);
                            if device != Some("lost") {
                                failed.push((C, format!("{op} returned Ok but device {} ends {device:?}", w.device)));
                            }
                            let left = live_of(&|c| c.device == w.device.0);
                            if !left.is_empty() {
                                failed.push((C, format!("{op} returned Ok but the device still has live {left:?}")));
                            }
                        }
                        Op::Retire => {
                            let user = snap.users.get(&w.user.0).map(String::as_str);
                            if !matches!(user, Some("retired" | "deleted")) {
                                failed.push((C, format!("retirement returned Ok but user {} ends {user:?}", w.user)));
                            }
                            let left = live_of(&|_| true);
                            if !left.is_empty() {
                                failed
                                    .push((C, format!("retirement returned Ok but the user still has live {left:?}")));
                            }
                        }
                        Op::Close => {
                            let facility = snap.facilities.get(&w.facility.0).map(String::as_str);
                            if facility != Some("closed") {
                                failed.push((
                                    C,
                                    format!("close returned Ok but facility {} ends {facility:?}", w.facility),
                                ));
                            }
                            let left = live_of(&|_| true);
                            if !left.is_empty() {
                                failed.push((C, format!("close returned Ok but the facility still has live {left:?}")));
                            }
                        }
                        Op::Suspend => {
                            let facility = snap.facilities.get(&w.facility.0).map(String::as_str);
                            if !matches!(facility, Some("suspended" | "closed")) {
                                failed.push((
                                    C,
                                    format!("suspend returned Ok but facility {} ends {facility:?}", w.facility),
                                ));
                            }
                        }
                        Op::HoldLimit => {
                            for serial in &listed {
                                // The row this run wrote must follow a hold: a
                                // certificate released first is no longer held.
                                let events = feed_of(serial);
                                for step in events.windows(2) {
                                    if step[1].at == call.at && step[0].status != CertStatus::OnHold {
                                        failed.push((
                                            B,
                                            format!(
                                                "hold limit revoked {serial} (#{}) when it was {} (#{}), not on hold",
                                                step[1].id, step[0].status, step[0].id
                                            ),
                                        ));
                                    }
                                }
                            }
                            let held_before = w.held_at.expect("held").unix_timestamp();
                            if let Some(row) = snap.certs.get(&w.serial)
                                && row.status == CertStatus::OnHold
                                && row.revoked_at <= held_before
                            {
                                failed.push((
                                    B,
                                    format!(
                                        "hold limit returned Ok but {} is still held since {}",
                                        w.serial, row.revoked_at
                                    ),
                                ));
                            }
                        }
                        Op::ResolveReleased | Op::Report => {}
                        other => unreachable!("{other:?} does not return a list"),
                    }
                    // Whatever a call says it revoked stays revoked.
                    if matches!(call.op, Op::Lost | Op::Retire | Op::Close | Op::ResolveRevoked | Op::HoldLimit) {
                        for serial in &listed {
                            let status = status_of(serial);
                            if !revoked(status) {
                                failed.push((B, format!("{op} reports {serial} revoked but it ends {status:?}")));
                            }
                        }
                    }
                }
                Effect::Issued(new) => {
                    let Some(row) = snap.certs.get(new) else {
                        failed.push((B, format!("{op} returned Ok for {new} but no such certificate is stored")));
                        continue;
                    };
                    let mut expected = vec![(new.clone(), CertStatus::Valid)];
                    if call.op == Op::Renew {
                        let old = status_of(&w.serial);
                        if old != Some(CertStatus::Superseded) {
                            failed.push((B, format!("renewal returned Ok but the old certificate ends {old:?}")));
                        }
                        expected.push((w.serial.clone(), CertStatus::Superseded));
                    }
                    let by_serial_then_status = |x: &(Serial, CertStatus), y: &(Serial, CertStatus)| {
                        (&x.0, x.1.as_str()).cmp(&(&y.0, y.1.as_str()))
                    };
                    let mut wrote = written.clone();
                    wrote.sort_by(by_serial_then_status);
                    expected.sort_by(by_serial_then_status);
                    if wrote != expected {
                        failed.push((D, format!("{op} wrote feed rows {written:?}, expected {expected:?}")));
                    }
                    // (c) a change that committed before the issuance forbids
                    // a usable certificate; audit ids are taken in commit order.
                    let issued = self
                        .audit
                        .get(&format!("certificate:{new}"))
                        .map(|rows| rows.iter().filter(|r| r.entry.action == "certificate.issue").collect::<Vec<_>>())
                        .unwrap_or_default();
                    let [issue] = issued.as_slice() else {
                        failed.push((D, format!("{new} has {} certificate.issue audit rows, not one", issued.len())));
                        continue;
                    };
                    let mut blockers: Vec<&AuditRecord> = Vec::new();
                    let mut add = |target: String, wanted: &dyn Fn(&AuditRecord) -> bool| {
                        blockers.extend(self.audit.get(&target).into_iter().flatten().filter(|r| wanted(r)));
                    };
                    add(format!("facility:{}", w.facility), &|r| {
                        matches!(r.entry.action.as_str(), "facility.close" | "facility.suspend")
                    });
                    add(format!("user:{}", w.user), &|r| r.entry.action == "user.retire");
                    if call.op == Op::Renew {
                        add(format!("device:{}", w.device), &|r| r.entry.action == "device.lost");
                        if let Some(id) = w.escalation {
                            add(format!("escalation:{id}"), &|r| {
                                r.entry.action == "escalation.resolve" && r.entry.detail["outcome"] == "revoked"
                            });
                        }
                    }
                    for blocker in blockers {
                        if blocker.id < issue.id && live(row.status) {
                            failed.push((
                                C,
                                format!(
                                    "{new} issued by {op} (audit #{}) is {} although {} (audit #{}) committed first",
                                    issue.id, row.status, blocker.entry.action, blocker.id
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for (check, what) in failed {
            self.fail(check, Some(round), None, what);
        }
    }

    /// Once every round is done: a follower starting from scratch, the
    /// database and the audit chain.
    async fn check_end(&mut self, store: &Store, sql: &AnyPool) {
        // Rows come in id order, so the last one of a serial wins.
        let fresh: HashMap<Serial, (CertStatus, Option<Reason>)> = store
            .events_after(0, 1_000_000)
            .await
            .expect("whole feed")
            .into_iter()
            .map(|e| (e.serial, (e.status, e.reason)))
            .collect();
        let rows = sqlx::query("select serial, status, revocation_reason from certificates")
            .fetch_all(sql)
            .await
            .expect("all certificates");
        for row in &rows {
            let serial: Serial = row.try_get::<String, _>("serial").expect("serial").parse().expect("serial");
            let status: CertStatus = row.try_get::<String, _>("status").expect("status").parse().expect("status");
            let reason: Option<Reason> = row
                .try_get::<Option<String>, _>("revocation_reason")
                .expect("reason")
                .map(|r| r.parse().expect("reason"));
            let fed = fresh.get(&serial).copied();
            if fed != Some((status, reason)) {
                let what = format!(
                    "{serial}: database says {}, the feed read from the start says {fed:?}",
                    shown(status, reason)
                );
                self.fail(A, None, round_of(&serial), what);
            }
        }
        let offenders = store.consistency_offenders().await.expect("consistency offenders");
        for offender in offenders {
            if self.offenders_seen.insert(offender.serial.clone()) {
                let what = format!("certificate {} is live although {}", offender.serial, offender.why);
                self.fail(C, None, round_of(&offender.serial), what);
            }
        }
        let chain = store.verify_audit().await.expect("verify audit");
        if let Some((id, why)) = chain.first_break {
            self.fail(D, None, None, format!("the audit chain breaks at record {id}: {why}"));
        }
    }

    fn verdict(&self, elapsed: std::time::Duration, rounds: &[(bool, bool)]) {
        let both = rounds.iter().filter(|(a, b)| *a && *b).count();
        let only_a = rounds.iter().filter(|(a, b)| *a && !*b).count();
        let only_b = rounds.iter().filter(|(a, b)| !*a && *b).count();
        println!(
            "races: {} [{}]: {} rounds in {:.2} s{}; Ok for both {both}, only A {only_a}, only B {only_b}, \
             neither {}; {} failed checks in {} rounds",
            self.pair,
            self.backend,
            rounds.len(),
            elapsed.as_secs_f64(),
            self.timing,
            rounds.len() - both - only_a - only_b,
            self.per_check.values().sum::<usize>(),
            self.failed_rounds.len()
        );
        if self.failures.is_empty() {
            return;
        }
        let mut summary = String::new();
        for (check, n) in &self.per_check {
            let _ = writeln!(summary, "  {n:>5} × {check}");
        }
        let mut first: Vec<&String> = Vec::new();
        // The first failure of each kind, then more in order, so every kind shows.
        for check in self.per_check.keys() {
            if let Some(f) = self.failures.iter().find(|f| f.contains(check)) {
                first.push(f);
            }
        }
        for f in &self.failures {
            if first.len() >= 12 {
                break;
            }
            if !first.contains(&f) {
                first.push(f);
            }
        }
        panic!(
            "{} [{}]: {} failed checks in {} of {} rounds:\n{summary}first failures:\n{}",
            self.pair,
            self.backend,
            self.per_check.values().sum::<usize>(),
            self.failed_rounds.len(),
            rounds.len(),
            first.iter().map(|f| format!("- {f}")).collect::<Vec<_>>().join("\n")
        );
    }
}

async fn race_pair(db: TestDb, a: Op, b: Op) {
    let began = Instant::now();
    let plan = Plan::new(a, b);
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

/// One test per pair and backend, named after the pair.
macro_rules! race_pairs {
    ($($name:ident: $a:ident vs $b:ident;)+) => {
        $(
            async fn $name(db: TestDb) {
                race_pair(db, Op::$a, Op::$b).await
            }
            both_backends!($name, crate::races::$name);
        )+
    };
}

race_pairs! {
    revoke_vs_revoke: Revoke vs Revoke;
    revoke_vs_hold: Revoke vs Hold;
    revoke_vs_release: Revoke vs Release;
    revoke_vs_lost: Revoke vs Lost;
    revoke_vs_retire: Revoke vs Retire;
    revoke_vs_close: Revoke vs Close;
    revoke_vs_renew: Revoke vs Renew;
    revoke_vs_escalation_released: Revoke vs ResolveReleased;
    revoke_vs_escalation_revoked: Revoke vs ResolveRevoked;
    revoke_vs_hold_limit: Revoke vs HoldLimit;
    revoke_vs_enroll: Revoke vs Enroll;
    revoke_vs_report: Revoke vs Report;
    hold_vs_hold: Hold vs Hold;
    hold_vs_release: Hold vs Release;
    hold_vs_lost: Hold vs Lost;
    hold_vs_retire: Hold vs Retire;
    hold_vs_close: Hold vs Close;
    hold_vs_renew: Hold vs Renew;
    hold_vs_escalation_released: Hold vs ResolveReleased;
    hold_vs_escalation_revoked: Hold vs ResolveRevoked;
    hold_vs_hold_limit: Hold vs HoldLimit;
    hold_vs_enroll: Hold vs Enroll;
    hold_vs_report: Hold vs Report;
    release_vs_release: Release vs Release;
    release_vs_lost: Release vs Lost;
    release_vs_retire: Release vs Retire;
    release_vs_close: Release vs Close;
    release_vs_renew: Release vs Renew;
    release_vs_escalation_released: Release vs ResolveReleased;
    release_vs_escalation_revoked: Release vs ResolveRevoked;
    release_vs_hold_limit: Release vs HoldLimit;
    release_vs_enroll: Release vs Enroll;
    release_vs_report: Release vs Report;
    lost_vs_lost: Lost vs Lost;
    lost_vs_retire: Lost vs Retire;
    lost_vs_close: Lost vs Close;
    lost_vs_renew: Lost vs Renew;
    lost_vs_escalation_released: Lost vs ResolveReleased;
    lost_vs_escalation_revoked: Lost vs ResolveRevoked;
    lost_vs_hold_limit: Lost vs HoldLimit;
    lost_vs_enroll: Lost vs Enroll;
    lost_vs_report: Lost vs Report;
    retire_vs_retire: Retire vs Retire;
    retire_vs_close: Retire vs Close;
    retire_vs_renew: Retire vs Renew;
    retire_vs_escalation_released: Retire vs ResolveReleased;
    retire_vs_escalation_revoked: Retire vs ResolveRevoked;
    retire_vs_hold_limit: Retire vs HoldLimit;
    retire_vs_enroll: Retire vs Enroll;
    retire_vs_report: Retire vs Report;
    close_vs_close: Close vs Close;
    close_vs_renew: Close vs Renew;
    close_vs_escalation_released: Close vs ResolveReleased;
    close_vs_escalation_revoked: Close vs ResolveRevoked;
    close_vs_hold_limit: Close vs HoldLimit;
    close_vs_enroll: Close vs Enroll;
    close_vs_report: Close vs Report;
    suspend_vs_renew: Suspend vs Renew;
    suspend_vs_enroll: Suspend vs Enroll;
    renew_vs_renew: Renew vs Renew;
    renew_vs_escalation_released: Renew vs ResolveReleased;
    renew_vs_escalation_revoked: Renew vs ResolveRevoked;
    renew_vs_hold_limit: Renew vs HoldLimit;
    renew_vs_enroll: Renew vs Enroll;
    renew_vs_report: Renew vs Report;
    escalation_released_vs_escalation_released: ResolveReleased vs ResolveReleased;
    escalation_released_vs_escalation_revoked: ResolveReleased vs ResolveRevoked;
    escalation_released_vs_hold_limit: ResolveReleased vs HoldLimit;
    escalation_released_vs_enroll: ResolveReleased vs Enroll;
    escalation_released_vs_report: ResolveReleased vs Report;
    escalation_revoked_vs_escalation_revoked: ResolveRevoked vs ResolveRevoked;
    escalation_revoked_vs_hold_limit: ResolveRevoked vs HoldLimit;
    escalation_revoked_vs_enroll: ResolveRevoked vs Enroll;
    escalation_revoked_vs_report: ResolveRevoked vs Report;
    hold_limit_vs_hold_limit: HoldLimit vs HoldLimit;
    hold_limit_vs_enroll: HoldLimit vs Enroll;
    hold_limit_vs_report: HoldLimit vs Report;
    enroll_vs_enroll: Enroll vs Enroll;
    enroll_vs_report: Enroll vs Report;
    report_vs_report: Report vs Report;
}
