//! The one way a certificate's status changes.
//!
//! Revoke, hold, release, lost device, retirement, facility suspend, resume
//! and close, renewal's supersede, escalation resolutions and the hold limit
//! all come here. The
//! domain (`certificate::decide`) says which step the change means from the
//! state the certificate is in; the store carries it out with a guarded
//! `UPDATE … WHERE serial IN (…) AND status = <the state read> RETURNING
//! serial`, and writes a feed row and an audit row only for the rows that
//! UPDATE really changed. A row the guard did not match is read again and
//! decided again, so a revoke that meets a certificate released a moment ago
//! still revokes it instead of reporting what it first saw. A release lifts
//! only holds nobody else keeps (`holds.rs`, `domain::hold`). A device left
//! with nothing in force has its open reports closed in the same
//! transaction (`settled.rs`), whichever of these paths stopped it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::certificate::{BulkChange, Change, Decision, decide, in_force};
use connect_pki_domain::hold::{Keeper, Lift, Lifter, lift};
use connect_pki_domain::{AuditAction, CertStatus, DeviceId, FacilityId, Reason, Serial, UserId};

use crate::audit::AuditEntry;
use crate::error::Conflict;
use crate::holds;
use crate::records::{opt_text, quoted, text};
use crate::{Backend, StoreError, WriteTx, secs};

/// Statements bind at most this many serials at once (well inside both
/// backends' limits on bound parameters).
const CHUNK: usize = 400;

/// How often a guard that found another state is decided again. Every write
/// transaction holds the writer lock, so a second round is already
/// unreachable; the bound only keeps a broken invariant from looping.
const MAX_ROUNDS: usize = 4;

/// PostgreSQL channel on which a commit that wrote feed rows wakes followers.
pub const FEED_CHANNEL: &str = "connect_pki_feed";

/// What to change, and on whose behalf.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    /// The change, and which states it touches (the hold limit revokes
    /// holds, never a certificate released since): the domain's to say.
    pub(crate) change: BulkChange,
    pub(crate) actor: &'a str,
    /// Added to every audit row's detail.
    pub(crate) detail: Value,
    /// On whose behalf a release lifts holds that others may keep
    /// (`domain::hold::lift`), and a hold is kept (行政管理課's for it); a
    /// direct call of a manager unless set.
    pub(crate) lifter: Lifter,
}

impl<'a> Request<'a> {
    pub(crate) fn new(change: BulkChange, actor: &'a str, detail: Value) -> Self {
        Self { change, actor, detail, lifter: Lifter::Direct }
    }

    /// The same request, releasing on behalf of `lifter`.
    pub(crate) fn lifted_by(self, lifter: Lifter) -> Self {
        Self { lifter, ..self }
    }
}

/// One certificate that really changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transition {
    pub(crate) serial: Serial,
    pub(crate) from: CertStatus,
    pub(crate) to: CertStatus,
    /// The reason it carries now.
    pub(crate) reason: Option<Reason>,
}

/// A certificate's state and holder, as a round reads them (or as the
/// caller already read them in the same transaction: `apply_known`).
pub(crate) struct Known {
    pub(crate) status: CertStatus,
    pub(crate) reason: Option<Reason>,
    pub(crate) device: i64,
    pub(crate) user: i64,
    pub(crate) facility: i64,
}

type Current = Known;

/// Applies `req` to each of `serials` (unknown serials are an error), and
/// returns the certificates that changed, in the order given.
pub(crate) async fn apply(
    tx: &mut WriteTx,
    serials: &[Serial],
    req: &Request<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Transition>, StoreError> {
    apply_from(tx, serials, None, req, now).await
}

/// [`apply`] to one certificate whose state and holder the caller read in
/// this transaction: the first round takes them instead of reading again
/// (the update is guarded by that state; if it moved, the next round reads).
pub(crate) async fn apply_known(
    tx: &mut WriteTx,
    serial: &Serial,
    known: Known,
    req: &Request<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Transition>, StoreError> {
    let seed = BTreeMap::from([(serial.clone(), known)]);
    apply_from(tx, std::slice::from_ref(serial), Some(seed), req, now).await
}

async fn apply_from(
    tx: &mut WriteTx,
    serials: &[Serial],
    mut seed: Option<BTreeMap<Serial, Current>>,
    req: &Request<'_>,
    now: OffsetDateTime,
) -> Result<Vec<Transition>, StoreError> {
    let mut pending: Vec<Serial> = serials.to_vec();
    let mut done: Vec<(Transition, Current)> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let current = match seed.take() {
            Some(known) => known,
            None => read(tx, &pending).await?,
        };
        // (from, to, reason) → serials: one guarded UPDATE per group.
        let mut groups: BTreeMap<(CertStatus, CertStatus, Option<Reason>), Vec<Serial>> = BTreeMap::new();
        for serial in &pending {
            let c = current.get(serial).ok_or(StoreError::NotFound("certificate"))?;
            if !req.change.touches(c.status) {
                continue;
            }
            if let Decision::Apply { status, reason } = decide(c.status, req.change.change)? {
                groups.entry((c.status, status, reason)).or_default().push(serial.clone());
            }
        }
        if matches!(req.change.change, Change::Release) {
            let releasing: Vec<Serial> = groups.values().flatten().cloned().collect();
            let kept = settle_keepers(tx, req.lifter, &releasing).await?;
            for group in groups.values_mut() {
                group.retain(|s| !kept.contains(s));
            }
        }
        let mut retry = Vec::new();
        let mut current = current;
        for ((from, to, reason), group) in groups {
            let changed = guarded_update(tx, &group, from, to, reason, now).await?;
            for serial in group {
                if changed.contains(&serial) {
                    let c = current.remove(&serial).ok_or(StoreError::NotFound("certificate"))?;
                    done.push((Transition { serial, from, to, reason }, Current { reason, ..c }));
                } else {
                    retry.push(serial);
                }
            }
        }
        pending = retry;
    }
    if !pending.is_empty() {
        return Err(StoreError::Corrupt(format!("certificate {} kept changing under the writer lock", pending[0])));
    }
    match req.change.change {
        Change::Hold if req.lifter == Lifter::City => holds::keep_for_city(tx, serials, secs(now)).await?,
        Change::Release => {
            let released: Vec<Serial> = done.iter().map(|(t, _)| t.serial.clone()).collect();
            holds::forget_city_holds(tx, &released).await?;
        }
        _ => {}
    }
    record(tx, req, &done, now).await?;
    let stopped: BTreeSet<DeviceId> =
        done.iter().filter(|(t, _)| !in_force(t.to)).map(|(_, c)| DeviceId(c.device)).collect();
    crate::settled::reports_of_stopped(tx, &stopped, req.actor, now).await?;
    let order: BTreeMap<&Serial, usize> = serials.iter().enumerate().map(|(i, s)| (s, i)).collect();
    let mut out: Vec<Transition> = done.into_iter().map(|(t, _)| t).collect();
    out.sort_by_key(|t| order.get(&t.serial).copied().unwrap_or(usize::MAX));
    Ok(out)
}

/// The condition on `c.status` that selects the certificates `change`
/// touches, in the domain's own words (for narrowing a bulk statement).
pub(crate) fn touched_states(change: &BulkChange) -> String {
    match change.only_from {
        Some(from) => format!("c.status in ({})", quoted(from.iter().map(|s| s.as_str()))),
        None => "1 = 1".to_string(),
    }
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

async fn read(tx: &mut WriteTx, serials: &[Serial]) -> Result<BTreeMap<Serial, Current>, StoreError> {
    let mut out = BTreeMap::new();
    for chunk in serials.chunks(CHUNK) {
        let sql = format!(
            "select c.serial, c.status, c.revocation_reason, c.device_id, u.id as u_id, u.facility_id from certificates c \
             join devices d on d.id = c.device_id join users u on u.id = d.user_id where c.serial in ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for s in chunk {
            q = q.bind(s.to_hex());
        }
        for row in q.fetch_all(&mut **tx).await? {
            out.insert(
                text(&row, "serial")?,
                Current {
                    status: text(&row, "status")?,
                    reason: opt_text(&row, "revocation_reason")?,
                    device: row.try_get("device_id")?,
                    user: row.try_get("u_id")?,
                    facility: row.try_get("facility_id")?,
                },
            );
        }
    }
    Ok(out)
}

/// Asks `domain::hold::lift` about each hold a release would lift, given
/// what keeps it. A hold a report or a suspension keeps is lifted only when
/// the last of them lets go: a direct release of one is refused whoever asks
/// (the escalation's resolution, or the facility's resume, lifts it); an
/// escalation or a resume leaves it to the other keepers, and returns it
/// here. Read under the writer lock, so a report or a suspension committed
/// before this transaction is seen, and one committed after finds the
/// certificate released and holds it again.
async fn settle_keepers(tx: &mut WriteTx, lifter: Lifter, serials: &[Serial]) -> Result<BTreeSet<Serial>, StoreError> {
    let keepers = holds::keepers(tx, serials).await?;
    let mut kept = BTreeSet::new();
    for serial in serials {
        match lift(lifter, keepers.get(serial).map(Vec::as_slice).unwrap_or_default()) {
            Lift::Now => {}
            Lift::Refused(Keeper::Escalation { id, .. }) => {
                return Err(Conflict::HeldByEscalation { escalation: id, serial: serial.clone() }.into());
            }
            Lift::Refused(Keeper::Suspension(facility)) => {
                return Err(Conflict::HeldBySuspension { facility, serial: serial.clone() }.into());
            }
            Lift::Refused(Keeper::City) => return Err(Conflict::HeldByCity { serial: serial.clone() }.into()),
            Lift::Deferred { on_resume } => {
                if let Some(facility) = on_resume {
                    holds::release_on_resume(tx, facility, serial).await?;
                }
                kept.insert(serial.clone());
            }
        }
    }
    Ok(kept)
}

async fn guarded_update(
    tx: &mut WriteTx,
    serials: &[Serial],
    from: CertStatus,
    to: CertStatus,
    reason: Option<Reason>,
    now: OffsetDateTime,
) -> Result<BTreeSet<Serial>, StoreError> {
    let mut changed = BTreeSet::new();
    // A certificate made valid again carries no revocation time or reason.
    let revoked_at = (to != CertStatus::Valid).then_some(secs(now));
    for chunk in serials.chunks(CHUNK) {
        let sql = format!(
            "update certificates set status = $1, revocation_reason = $2, revoked_at = $3, updated_at = $4 \
             where status = $5 and serial in ({}) returning serial",
            placeholders(6, chunk.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(to.as_str())
            .bind(reason.map(Reason::as_str))
            .bind(revoked_at)
            .bind(secs(now))
            .bind(from.as_str());
        for s in chunk {
            q = q.bind(s.to_hex());
        }
        for row in q.fetch_all(&mut **tx).await? {
            changed.insert(text::<Serial>(&row, "serial")?);
        }
    }
    Ok(changed)
}

/// Feed rows and audit rows for the certificates that changed.
async fn record(
    tx: &mut WriteTx,
    req: &Request<'_>,
    done: &[(Transition, Current)],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let events: Vec<(Serial, CertStatus, Option<Reason>)> =
        done.iter().map(|(t, c)| (t.serial.clone(), t.to, c.reason)).collect();
    insert_events(tx, &events, now).await?;
    let action = match req.change.change {
        Change::Revoke(_) => AuditAction::CertificateRevoke,
        Change::Hold => AuditAction::CertificateHold,
        Change::Release => AuditAction::CertificateRelease,
        Change::Supersede => AuditAction::CertificateRenew,
    };
    let entries: Vec<AuditEntry> = done
        .iter()
        .map(|(t, c)| {
            let mut detail = json!({"from": t.from, "to": t.to, "reason": c.reason});
            if let (Some(d), Value::Object(extra)) = (detail.as_object_mut(), &req.detail) {
                d.extend(extra.clone());
            }
            AuditEntry::ok(
                req.actor,
                action,
                format!("certificate:{}", t.serial),
                detail,
                Some(FacilityId(c.facility)),
                Some(UserId(c.user)),
            )
        })
        .collect();
    tx.audit_all(now, &entries).await
}

/// Appends feed rows, in order, and on PostgreSQL wakes the followers of
/// every instance when the transaction commits.
pub(crate) async fn insert_events(
    tx: &mut WriteTx,
    events: &[(Serial, CertStatus, Option<Reason>)],
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    for chunk in events.chunks(CHUNK / 4) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
            .collect();
        let sql = format!("insert into cert_events (serial, status, reason, at) values {}", values.join(", "));
        let mut q = sqlx::query(&sql);
        for (serial, status, reason) in chunk {
            q = q.bind(serial.to_hex()).bind(status.as_str()).bind(reason.map(Reason::as_str)).bind(secs(at));
        }
        q.execute(&mut **tx).await?;
    }
    if tx.backend() == Backend::Postgres {
        // Delivered at commit, once per transaction however many rows it wrote.
        sqlx::query("select pg_notify($1, '')").bind(FEED_CHANNEL).execute(&mut **tx).await?;
    }
    Ok(())
}
