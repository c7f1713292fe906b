//! Reading the audit log (`admin_division`; a manager their facility's
//! trail), and recording refusals.
//!
//! A refused request of a certificate holder is part of an incident's
//! record, but anyone can make many: a web page the user visits sends the
//! user's certificate with every request it makes. So refusals are counted
//! in memory per caller, route and minute ([`Refusals`]) and reach the
//! hash chain as one row with a count, a bounded number per caller a
//! minute; the hot path takes no write lock.

use std::collections::HashMap;
use std::sync::Mutex;

use connect_pki_domain::clock::rfc3339;
use connect_pki_domain::{Action, AuditAction, FacilityId, Serial, UserId, authorize};
use connect_pki_store::{AuditEntry, AuditFilter, AuditRecord, UserRecord};
use time::OffsetDateTime;

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;

/// Audit records matching `filter`, with the refusals counted so far.
pub async fn list(ra: &Ra, caller: &Requester, filter: &AuditFilter) -> Result<Vec<AuditRecord>, ServiceError> {
    authorize(&caller.actor, Action::ReadAudit)?;
    flushed(ra).await;
    Ok(ra.store.audit_page(filter).await?)
}

/// The audit trail of one facility (its manager reads their own): the
/// records that name it, read only.
/// The people records mention, by id, for a reader of the whole log
/// (who sees every facility's audit rows, and so these names, already).
pub async fn people(ra: &Ra, caller: &Requester, ids: &[UserId]) -> Result<Vec<UserRecord>, ServiceError> {
    authorize(&caller.actor, Action::ReadAudit)?;
    Ok(ra.store.users_by_ids(ids).await?)
}

/// The people a facility's trail mentions, for its manager: the trail's
/// rows already name them; the page shows those of other facilities (the
/// city's staff) by their role only.
pub async fn people_of_trail(
    ra: &Ra,
    caller: &Requester,
    facility: FacilityId,
    ids: &[UserId],
) -> Result<Vec<UserRecord>, ServiceError> {
    authorize(&caller.actor, Action::ReadFacilityAudit(facility))?;
    Ok(ra.store.users_by_ids(ids).await?)
}

pub async fn facility_trail(
    ra: &Ra,
    caller: &Requester,
    facility: FacilityId,
    filter: &AuditFilter,
) -> Result<Vec<AuditRecord>, ServiceError> {
    authorize(&caller.actor, Action::ReadFacilityAudit(facility))?;
    flushed(ra).await;
    let filter = AuditFilter { facility: Some(facility), ..filter.clone() };
    Ok(ra.store.audit_page(&filter).await?)
}

/// Distinct routes one caller's refusals are written under per flush; the
/// rest go into one row (`* (other routes)`), so a caller adds at most this
/// many and one rows a minute.
const ROUTES_PER_CALLER: usize = 8;

/// Callers and routes counted between two flushes: past it, refusals are
/// only counted in `connect_pki_refusals_dropped_total`.
const MAX_PENDING: usize = 4096;

/// The route under which refusals past [`ROUTES_PER_CALLER`] are written.
const OTHER_ROUTES: &str = "* (other routes)";

#[derive(Debug, Clone, Copy)]
struct Counted {
    first: OffsetDateTime,
    last: OffsetDateTime,
    count: u64,
}

/// Who was refused: a holder of one of our certificates, or an anonymous
/// client (`public:<address>`, as the rest of the audit log names it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Refused {
    Certificate(Serial),
    Public(String),
}

/// Refusals not yet written, per caller and route.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<HashMap<(Refused, String), Counted>>);

impl Refusals {
    fn take(&self) -> HashMap<(Refused, String), Counted> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn count(&self, who: Refused, route: &str, now: OffsetDateTime) {
        let mut pending = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let len = pending.len();
        let key = (who, route.to_string());
        match pending.get_mut(&key) {
            Some(c) => {
                c.count += 1;
                c.last = now;
            }
            None if len < MAX_PENDING => {
                pending.insert(key, Counted { first: now, last: now, count: 1 });
            }
            None => ::metrics::counter!("connect_pki_refusals_dropped_total").increment(1),
        }
    }
}

/// Counts a refused (403) request made with one of our certificates, to
/// `route` (`POST /api/v1/certificates/{serial}/revoke`): who tried what is
/// part of the record of an incident, like what was done.
pub fn record_refusal(ra: &Ra, serial: &Serial, route: &str) {
    ra.refusals.count(Refused::Certificate(serial.clone()), route, ra.clock.now());
}

/// Counts a refusal of an anonymous client (`public:<address>`), such as a
/// code that names no code: on record per client, route and minute, with
/// no write while the request waits (a flood of guesses from many
/// addresses would otherwise hold the writer lock a revocation needs).
pub(crate) fn record_public_refusal(ra: &Ra, actor: &str, route: &str) {
    ra.refusals.count(Refused::Public(actor.to_string()), route, ra.clock.now());
}

/// Writes the refusals counted so far, one row per caller and route (at most
/// [`ROUTES_PER_CALLER`] and one per caller); returns how many rows. Rows
/// that could not be written are counted again for the next flush.
pub async fn flush_refusals(ra: &Ra) -> Result<usize, ServiceError> {
    let mut by_caller: HashMap<Refused, Vec<(String, Counted)>> = HashMap::new();
    for ((who, route), c) in ra.refusals.take() {
        by_caller.entry(who).or_default().push((route, c));
    }
    let mut written = 0;
    let mut left: Vec<(Refused, String, Counted)> = Vec::new();
    for (who, mut routes) in by_caller {
        routes.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        if routes.len() > ROUTES_PER_CALLER {
            let rest = routes.split_off(ROUTES_PER_CALLER);
            let merged = rest.iter().map(|(_, c)| *c).reduce(|a, b| Counted {
                first: a.first.min(b.first),
                last: a.last.max(b.last),
                count: a.count + b.count,
            });
            routes.extend(merged.map(|c| (OTHER_ROUTES.to_string(), c)));
        }
        let holder = match &who {
            Refused::Certificate(serial) => match ra.store.identity_by_serial(serial).await {
                Ok(h) => h,
                Err(e) => {
                    left.extend(routes.into_iter().map(|(r, c)| (who.clone(), r, c)));
                    tracing::warn!(error = %e, "refusals kept for the next flush");
                    continue;
                }
            },
            Refused::Public(_) => None,
        };
        for (route, c) in routes {
            let mut detail = serde_json::json!({
                "count": c.count,
                "first_at": rfc3339(c.first),
                "last_at": rfc3339(c.last),
            });
            let (actor, outcome) = match &who {
                Refused::Certificate(serial) => {
                    detail["certificate"] = serial.to_hex().into();
                    let actor = holder
                        .as_ref()
                        .map_or_else(|| format!("certificate:{serial}"), |h| format!("user:{}", h.user.id));
                    (actor, "forbidden")
                }
                Refused::Public(actor) => (actor.clone(), "refused"),
            };
            let entry = AuditEntry {
                actor,
                action: AuditAction::RequestRefused,
                target: route.clone(),
                outcome: outcome.into(),
                detail,
                facility: holder.as_ref().map(|h| h.facility.id),
                user: holder.as_ref().map(|h| h.user.id),
            };
            match ra.store.audit(c.last, &entry).await {
                Ok(()) => written += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "a refusal row kept for the next flush");
                    left.push((who.clone(), route, c));
                }
            }
        }
    }
    if !left.is_empty() {
        let mut pending = ra.refusals.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (who, route, c) in left {
            pending
                .entry((who, route))
                .and_modify(|p| {
                    p.count += c.count;
                    p.first = p.first.min(c.first);
                })
                .or_insert(c);
        }
    }
    Ok(written)
}

/// Writes the refusals counted so far before the log is read, so that what
/// is read includes them.
pub(crate) async fn flushed(ra: &Ra) {
    if let Err(e) = flush_refusals(ra).await {
        tracing::warn!(error = %e, "the refusals counted could not be written before reading the audit log");
    }
}
