//! The destructive routes (issue 10) — revoke, hold, release, lost device,
//! retirement now and scheduled, cancelling a scheduled one, deletion, and the escalations: report,
//! claim, resolve — × every role × a user of the caller's facility, a user
//! of another facility and the caller's own second device, against a table
//! written out here (not derived from the policy code).
//!
//! Every call gets a target made for it alone, and the answer is checked
//! against what happened to that target: a refusal (403 `forbidden`) leaves
//! it exactly as it was — OCSP, the handshake, the user, the device, its
//! escalations — and an allowed call has exactly its effect and no other.
//! Escalation work runs at 10:00 on a business day and again at 22:00, when
//! only 行政管理課 may lift a hold.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use connect_pki_domain::certificate::Change;
use connect_pki_domain::user::Departure;
use connect_pki_domain::{Clock, DeviceId, FacilityId, Role, Serial, UserId};
use connect_pki_e2e::builders::Enrolled;
use connect_pki_e2e::client::Identity;
use connect_pki_e2e::fixtures::{PASSWORD, next_business_morning};
use connect_pki_e2e::{Backend, TestApp, both_backends};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::world::{World, world};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Revoke,
    Hold,
    /// Release a hold placed directly (not by an emergency report).
    Release,
    /// Release a hold an emergency report placed: only resolving its
    /// escalation lifts it, so even an allowed caller gets 409.
    ReleaseEscalationHold,
    Lost,
    RetireNow,
    RetireLater,
    /// Cancel a retirement scheduled for the holder.
    CancelRetirement,
    /// Delete a retired user.
    Delete,
    /// Report the device lost for its holder (`POST /api/v1/escalations`).
    Report,
    /// Claim the escalation of the holder's own emergency report.
    Claim,
    /// Resolve it, claimed by the caller (even one the claim route refuses:
    /// the rules on resolving must hold on their own).
    ResolveRevoked,
    ResolveReleased,
    ResolveRejected,
}
use Op::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// A staff member of the caller's facility.
    OwnFacility,
    /// A staff member of another facility.
    OtherFacility,
    /// The second device of the caller, a fresh user of the caller's role.
    OwnDevice,
}
use Scope::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// 10:00 on a business day.
    Day,
    /// 22:00 the same day.
    Night,
}
use When::*;

const ROLES: [&str; 4] = ["admin", "welfare", "manager", "staff"];
const NONE: &[&str] = &[];
const ADMIN: &[&str] = &["admin"];
const ADMIN_AND_MANAGER: &[&str] = &["admin", "manager"];

/// (operation, when, callers allowed on a user of their own facility, on one
/// of another facility, on their own device — `None` where the call cannot
/// be made: a retired user has no certificate left to delete themselves with).
type Row = (Op, When, &'static [&'static str], &'static [&'static str], Option<&'static [&'static str]>);

/// Managers act on their own facility only; 福祉課 and staff act on no one
/// here (staff report their own loss on the public emergency route);
/// 行政管理課 acts everywhere. The reporter of a loss never lifts its hold
/// (the own-device escalations are the holder's own reports), and outside
/// business hours only 行政管理課 does; rejecting a report lifts its holds
/// too, under the same rules.
const TABLE: &[Row] = &[
    (Revoke, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (Hold, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (Release, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (ReleaseEscalationHold, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (Lost, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (RetireNow, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (RetireLater, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (CancelRetirement, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (Delete, Day, ADMIN_AND_MANAGER, ADMIN, None),
    (Report, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (Claim, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (ResolveRevoked, Day, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (ResolveReleased, Day, ADMIN_AND_MANAGER, ADMIN, Some(NONE)),
    // A rejection lifts the report's holds: the rules of a release.
    (ResolveRejected, Day, ADMIN_AND_MANAGER, ADMIN, Some(NONE)),
    (Claim, Night, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (ResolveRevoked, Night, ADMIN_AND_MANAGER, ADMIN, Some(ADMIN_AND_MANAGER)),
    (ResolveReleased, Night, ADMIN, ADMIN, Some(NONE)),
    (ResolveRejected, Night, ADMIN, ADMIN, Some(NONE)),
];

/// Whether the table lets `who` do `op` at `when` in `scope` (`None`: not a
/// case at all).
fn allowed(op: Op, when: When, scope: Scope, who: &str) -> Option<bool> {
    let (.., own, other, own_device) = TABLE.iter().find(|r| r.0 == op && r.1 == when)?;
    let callers = match scope {
        OwnFacility => Some(*own),
        OtherFacility => Some(*other),
        OwnDevice => *own_device,
    };
    callers.map(|c| c.contains(&who))
}

#[derive(Debug, Clone, Copy)]
struct Case {
    op: Op,
    when: When,
    scope: Scope,
    who: &'static str,
    allowed: bool,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (op, when, ..) in TABLE {
        for who in ROLES {
            for scope in [OwnFacility, OtherFacility, OwnDevice] {
                if let Some(allowed) = allowed(*op, *when, scope, who) {
                    out.push(Case { op: *op, when: *when, scope, who, allowed });
                }
            }
        }
    }
    out
}

/// The callers of the own- and other-facility cases (the own-device cases
/// get a fresh caller each): (identity, user id, facility).
struct Callers {
    admin: (Identity, i64, i64),
    welfare: (Identity, i64, i64),
    manager: (Identity, i64, i64),
    staff: (Identity, i64, i64),
}

impl Callers {
    async fn of(w: &World) -> Self {
        let welfare = w.app.whoami(&w.welfare).await["user_id"].as_i64().expect("user");
        Self {
            admin: (w.app.admin.clone(), 1, 1),
            welfare: (w.welfare.clone(), welfare, 1),
            manager: (w.manager_a.id.clone(), w.manager_a.user_id, w.facility_a),
            staff: (w.staff_a.id.clone(), w.staff_a.user_id, w.facility_a),
        }
    }

    fn get(&self, who: &str) -> &(Identity, i64, i64) {
        match who {
            "admin" => &self.admin,
            "welfare" => &self.welfare,
            "manager" => &self.manager,
            _ => &self.staff,
        }
    }
}

/// Another facility than the caller's: A for the city's roles (placed in
/// facility 1), B for A's manager and staff.
fn other_facility(w: &World, own: i64) -> i64 {
    if own == w.facility_a { w.facility_b } else { w.facility_a }
}

fn role(who: &str) -> Role {
    match who {
        "admin" => Role::AdminDivision,
        "welfare" => Role::WelfareDivision,
        "manager" => Role::FacilityManager,
        _ => Role::Staff,
    }
}

/// What one call acts on, and who makes it.
struct Target {
    device: Enrolled,
    login: String,
    facility: i64,
    caller: Identity,
    caller_user: i64,
    /// The escalation of the holder's own report, for the cases that need one.
    escalation: Option<i64>,
}

fn fresh_login() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("target{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A fresh staff member of the facility the case names, with one device; or,
/// for the own-device scope, a fresh user of the caller's role with two
/// devices, calling from the first about the second.
async fn target(w: Arc<World>, callers: Arc<Callers>, case: Case) -> Target {
    let app = &w.app;
    let (caller, caller_user, own) = callers.get(case.who).clone();
    let login = fresh_login();
    match case.scope {
        OwnFacility | OtherFacility => {
            let facility = if case.scope == OwnFacility { own } else { other_facility(&w, own) };
            let device = app.quick_user(facility, &login, Role::Staff, 1).await.remove(0);
            Target { device, login, facility, caller, caller_user, escalation: None }
        }
        OwnDevice => {
            let mut devices = app.quick_user(own, &login, role(case.who), 2).await;
            let device = devices.remove(1);
            let caller = devices.remove(0);
            Target { device, login, facility: own, caller: caller.id, caller_user: caller.user_id, escalation: None }
        }
    }
}

/// What a case needs in place before its call. Written through the store
/// (or by the holder on the public emergency route): the routes that would
/// make it are cases of their own, and nothing but the rules of the call
/// under test should stand between the caller and its effect.
async fn prepare(app: &TestApp, case: Case, t: &mut Target) {
    let store = &app.state().store;
    let now = app.clock.now();
    let serial: Serial = t.device.serial.parse().expect("serial");
    match case.op {
        Release => drop(store.change_certificate(&serial, Change::Hold, "test:setup", now).await.expect("hold")),
        Delete => drop(
            store
                .retire_user(UserId(t.device.user_id), "test:setup", Departure::Allowed, false, now)
                .await
                .expect("retire"),
        ),
        CancelRetirement => {
            let at = now + Duration::days(3);
            store
                .schedule_retirement(UserId(t.device.user_id), at, false, "test:setup", Departure::Allowed, now)
                .await
                .expect("schedule");
        }
        ReleaseEscalationHold | Claim | ResolveRevoked | ResolveReleased | ResolveRejected => {
            let body = json!({"login_id": t.login, "password": PASSWORD, "device_id": t.device.device_id});
            let (status, out) = app.public_api("POST", "/api/v1/emergency", Some(&body)).await;
            assert_eq!(status, 201, "setup: the holder's report: {out}");
            let id = out["escalation_id"].as_i64().expect("escalation id");
            t.escalation = Some(id);
            if !matches!(case.op, ReleaseEscalationHold | Claim) {
                store.claim_escalation(id, UserId(t.caller_user), "", now).await.expect("claim");
            }
        }
        Revoke | Hold | Lost | RetireNow | RetireLater | Report => {}
    }
    app.state().revocations.sync().await.expect("the index follows the feed");
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).expect("format")
}

/// Method, path and body of the case's call on `t`.
fn request(op: Op, t: &Target, retire_at: OffsetDateTime) -> (&'static str, String, Option<Value>) {
    let cert = format!("/api/v1/certificates/{}", t.device.serial);
    let user = format!("/api/v1/users/{}", t.device.user_id);
    let escalation = format!("/api/v1/escalations/{}", t.escalation.unwrap_or(0));
    let resolve = |outcome: &str| {
        ("POST", format!("{escalation}/resolve"), Some(json!({"outcome": outcome, "note": "本人に確認した"})))
    };
    match op {
        Revoke => ("POST", format!("{cert}/revoke"), Some(json!({"reason": "keyCompromise"}))),
        Hold => ("POST", format!("{cert}/hold"), None),
        Release | ReleaseEscalationHold => ("POST", format!("{cert}/release"), None),
        Lost => ("POST", format!("/api/v1/devices/{}/lost", t.device.device_id), None),
        RetireNow => ("POST", format!("{user}/retire"), Some(json!({}))),
        RetireLater => ("POST", format!("{user}/retire"), Some(json!({"at": rfc3339(retire_at)}))),
        CancelRetirement => ("DELETE", format!("{user}/retirement"), None),
        Delete => ("DELETE", user, None),
        Report => {
            let body = json!({"device_id": t.device.device_id, "note": "電話で受付"});
            ("POST", "/api/v1/escalations".into(), Some(body))
        }
        Claim => ("POST", format!("{escalation}/claim"), None),
        ResolveRevoked => resolve("revoked"),
        ResolveReleased => resolve("released"),
        ResolveRejected => resolve("rejected"),
    }
}

/// The answer to an allowed call: status and error code.
fn allowed_answer(op: Op) -> (u16, Option<&'static str>) {
    match op {
        ReleaseEscalationHold => (409, Some("held_by_escalation")),
        Report => (201, None),
        _ => (200, None),
    }
}

/// Everything a call could change about its target. (Whether its
/// certificate still gets through a handshake is checked once, after the
/// call: a handshake in a debug build is most of a case's time.)
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    /// As `openssl ocsp` prints it.
    ocsp: String,
    user: String,
    device: String,
    retire_at: Option<OffsetDateTime>,
    /// The device's escalations, oldest first: (status, claimed by, outcome).
    escalations: Vec<(String, Option<i64>, Option<String>)>,
}

async fn snapshot(app: &TestApp, t: &Target) -> Snapshot {
    let store = &app.state().store;
    let user = UserId(t.device.user_id);
    let device = DeviceId(t.device.device_id);
    let mut escalations = store.escalations(Some(FacilityId(t.facility)), false).await.expect("escalations");
    escalations.retain(|e| e.device == device);
    escalations.sort_by_key(|e| e.id);
    Snapshot {
        ocsp: app.ocsp_status(&t.device.id).await,
        user: store.user(user).await.expect("read").expect("the user").status.as_str().to_string(),
        device: store.device(device).await.expect("read").expect("the device").status.to_string(),
        retire_at: store.retire_at(user).await.expect("read"),
        escalations: escalations
            .into_iter()
            .map(|e| (e.status.to_string(), e.claimed_by.map(|u| u.0), e.outcome))
            .collect(),
    }
}

/// The target after an allowed call, from the target before it.
fn effect(op: Op, before: &Snapshot, caller_user: i64, retire_at: OffsetDateTime) -> Snapshot {
    let mut s = before.clone();
    let ocsp = match op {
        Revoke | Lost | ResolveRevoked => Some("revoked keyCompromise"),
        Hold | Report => Some("revoked certificateHold"),
        Release | ResolveReleased | ResolveRejected => Some("good"),
        RetireNow => Some("revoked affiliationChanged"),
        ReleaseEscalationHold | RetireLater | CancelRetirement | Delete | Claim => None,
    };
    if let Some(ocsp) = ocsp {
        s.ocsp = ocsp.into();
    }
    match op {
        Lost | ResolveRevoked => s.device = "lost".into(),
        RetireNow => (s.user, s.device) = ("retired".into(), "retired".into()),
        Delete => s.user = "deleted".into(),
        RetireLater => s.retire_at = Some(retire_at),
        CancelRetirement => s.retire_at = None,
        Report => s.escalations.push(("open".into(), None, None)),
        _ => {}
    }
    let outcome = match op {
        ResolveRevoked => Some("revoked"),
        ResolveReleased => Some("released"),
        ResolveRejected => Some("rejected"),
        _ => None,
    };
    if let Some(e) = s.escalations.last_mut() {
        if op == Claim {
            *e = ("claimed".into(), Some(caller_user), None);
        } else if let Some(outcome) = outcome {
            *e = ("resolved".into(), e.1, Some(outcome.into()));
        }
    }
    s
}

/// Runs one case; `Err` says how it went wrong.
async fn run(w: Arc<World>, case: Case, mut t: Target, retire_at: OffsetDateTime) -> Result<(), String> {
    let app = &w.app;
    prepare(app, case, &mut t).await;
    let before = snapshot(app, &t).await;
    let (method, path, body) = request(case.op, &t, retire_at);
    let (status, out) = app.api(method, &path, Some(&t.caller), body.as_ref()).await;
    let after = snapshot(app, &t).await;
    let handshake = app.handshake_ok(&t.device.id).await;
    let ((want_status, want_code), want) = if case.allowed {
        (allowed_answer(case.op), effect(case.op, &before, t.caller_user, retire_at))
    } else {
        ((403, Some("forbidden")), before.clone())
    };
    let want_handshake = want.ocsp == "good" && want.user == "active";
    let code = out["error"]["code"].as_str();
    if status == want_status && code == want_code && after == want && handshake == want_handshake {
        return Ok(());
    }
    Err(format!(
        "{} {:?} {:?} {:?} ({method} {path}): expected {want_status} {want_code:?}, got {status} {out}\n  \
         before   {before:?}\n  expected {want:?}, handshake {want_handshake}\n  after    {after:?}, handshake {handshake}",
        case.who, case.op, case.scope, case.when
    ))
}

/// Runs `f` over `items` a few at a time (the calls are independent, and
/// their waits — commits, argon2, signatures — overlap); results in order.
async fn in_parallel<I, T, F, Fut>(items: Vec<I>, f: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for (n, item) in items.into_iter().enumerate() {
        let permits = permits.clone();
        let work = f(item);
        set.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("permits stay open");
            (n, work.await)
        });
    }
    let mut out = set.join_all().await;
    out.sort_by_key(|(n, _)| *n);
    out.into_iter().map(|(_, t)| t).collect()
}

async fn destructive_routes_by_role_and_scope(backend: Backend) {
    let started = std::time::Instant::now();
    let w = Arc::new(world(backend).await);
    let callers = Arc::new(Callers::of(&w).await);
    let cases = cases();
    // The targets are made first, on the real clock: the handshake checks
    // certificate validity against it.
    let targets = in_parallel(cases.clone(), |case| target(w.clone(), callers.clone(), case)).await;
    // For the holders' own emergency reports.
    w.app.give_passwords().await;
    let built = started.elapsed();
    let morning = next_business_morning();
    let retire_at = morning + Duration::days(7);
    let mut failures = Vec::new();
    let mut all: Vec<(Case, Target)> = cases.into_iter().zip(targets).collect();
    for (when, at) in [(Day, morning), (Night, morning + Duration::hours(12))] {
        w.app.clock.set(at);
        let (now, later): (Vec<_>, Vec<_>) = all.into_iter().partition(|(c, _)| c.when == when);
        all = later;
        let results = in_parallel(now, |(case, t)| run(w.clone(), case, t, retire_at)).await;
        failures.extend(results.into_iter().filter_map(Result::err));
    }
    eprintln!("{backend:?}: targets made in {built:?}, all cases done in {:?}", started.elapsed());
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
both_backends!(destructive_routes_by_role_and_scope);
