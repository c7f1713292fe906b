//! The invariants checked after each batch of rounds and once at the end,
//! and the verdict of a pair.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use super::snapshot::*;
use super::world::*;
use connect_pki_domain::{CertStatus, Reason, Serial};
use connect_pki_store::{AuditRecord, CertEvent, Store, StoreError};
use sqlx::{AnyPool, Row};

/// Follows the feed and the audit log as they grow, checks each batch of
/// rounds, and keeps what failed.
pub(super) struct Checker {
    pub(super) pair: String,
    pub(super) backend: &'static str,
    /// Feed rows up to this id were written by the setup.
    pub(super) feed_mark: i64,
    /// Every feed row so far, per serial in id order: the follower's view.
    pub(super) feed: HashMap<Serial, Vec<CertEvent>>,
    pub(super) feed_cursor: i64,
    /// Audit rows written after the setup with outcome ok, per target.
    pub(super) audit: HashMap<String, Vec<AuditRecord>>,
    /// Per serial, the audit rows that claim a status change of it.
    pub(super) claims: HashMap<String, Vec<Claim>>,
    pub(super) audit_cursor: i64,
    pub(super) offenders_seen: HashSet<Serial>,
    pub(super) failures: Vec<String>,
    pub(super) per_check: BTreeMap<&'static str, usize>,
    pub(super) failed_rounds: BTreeSet<usize>,
    /// Where the time went, for the summary line.
    pub(super) timing: String,
}

/// An audit row saying that a certificate changed: when (the calling
/// operation's own time) and to what.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub(super) id: i64,
    pub(super) at: i64,
    pub(super) to: CertStatus,
    /// Named in an escalation's resolution rather than in a certificate row.
    pub(super) via_escalation: bool,
}

pub(super) const A: &str = "(a) database, index and feed agree";
pub(super) const B: &str = "(b) lifecycle holds and Ok means done";
pub(super) const C: &str = "(c) nothing live for the lost, retired, closed or suspended";
pub(super) const D: &str = "(d) audit rows and reported lists match real changes";
pub(super) const E: &str = "(e) no database error reaches the caller";

impl Checker {
    pub(super) fn new(plan: &Plan, backend: &'static str, feed_mark: i64, audit_mark: i64) -> Self {
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

    pub(super) fn fail(&mut self, check: &'static str, round: Option<&Round>, round_no: Option<usize>, what: String) {
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

    pub(super) async fn check_batch(&mut self, store: &Store, sql: &AnyPool, rounds: &[Round]) {
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

    pub(super) fn check_round(&mut self, round: &Round, snap: &Snapshot) {
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
    pub(super) async fn check_end(&mut self, store: &Store, sql: &AnyPool) {
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

    pub(super) fn verdict(&self, elapsed: std::time::Duration, rounds: &[(bool, bool)]) {
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
