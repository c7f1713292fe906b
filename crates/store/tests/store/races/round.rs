//! The checks of one round: each certificate's views, feed and audit claims
//! (a, b, d), then what each call returned against what it did (b–e).

use connect_pki_domain::AuditAction;
use std::collections::BTreeSet;

use super::checks::{A, B, C, Checker, D, E, F};
use super::snapshot::*;
use super::world::*;
use connect_pki_domain::{CertStatus, Serial};
use connect_pki_store::{AuditRecord, CertEvent, StoreError};

/// What failed: the check and what was seen.
pub(super) type Failures = Vec<(&'static str, String)>;

/// One round against the snapshot taken after it and the feed and audit
/// log followed so far.
pub(super) struct RoundView<'a> {
    checker: &'a Checker,
    round: &'a Round,
    snap: &'a Snapshot,
    /// The certificates of the round's user.
    mine: Vec<(&'a Serial, &'a CertRow)>,
}

impl<'a> RoundView<'a> {
    pub(super) fn new(checker: &'a Checker, round: &'a Round, snap: &'a Snapshot) -> Self {
        let mine = snap.certs.iter().filter(|(_, c)| c.user == round.world.user.0).collect();
        Self { checker, round, snap, mine }
    }

    /// Every check of the round.
    pub(super) fn check(&self) -> Failures {
        let mut failed = Failures::new();
        for (serial, row) in &self.mine {
            self.three_views(serial, row, &mut failed);
            self.feed_is_a_lifecycle(serial, &mut failed);
            self.one_claim_per_change(serial, &mut failed);
            self.hold_kept_for_its_escalation(serial, row, &mut failed);
        }
        for call in &self.round.calls {
            self.check_call(call, &mut failed);
        }
        failed
    }

    fn status_of(&self, serial: &Serial) -> Option<CertStatus> {
        self.snap.certs.get(serial).map(|c| c.status)
    }

    fn feed_of(&self, serial: &Serial) -> &'a [CertEvent] {
        self.checker.feed.get(serial).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Feed rows written after the setup at the call's time.
    fn written_by(&self, call: &Call) -> Vec<(Serial, CertStatus)> {
        let mut rows = Vec::new();
        for (serial, _) in &self.mine {
            for e in self.feed_of(serial) {
                if e.at == call.at && e.id > self.checker.feed_mark {
                    rows.push(((*serial).clone(), e.status));
                }
            }
        }
        rows
    }

    fn live_of(&self, pick: &dyn Fn(&CertRow) -> bool) -> Vec<String> {
        self.mine
            .iter()
            .filter(|(_, c)| pick(c) && live(c.status))
            .map(|(s, c)| format!("{s} ({})", c.status))
            .collect()
    }

    /// (a) three views of one certificate.
    fn three_views(&self, serial: &Serial, row: &CertRow, failed: &mut Failures) {
        let db = (row.status, row.reason);
        match self.snap.index.get(serial) {
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
        match self.feed_of(serial).last() {
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
    }

    /// (f) a hold an open or claimed escalation placed is lifted only by its
    /// resolution, which closes the escalation first.
    fn hold_kept_for_its_escalation(&self, serial: &Serial, row: &CertRow, failed: &mut Failures) {
        if let Some(escalation) = self.snap.covered.get(serial)
            && row.status == CertStatus::Valid
        {
            failed.push((F, format!("{serial} is valid although escalation {escalation} is still open and holds it")));
        }
    }

    /// (b) the feed is a legal lifecycle with no row for a non-change.
    fn feed_is_a_lifecycle(&self, serial: &Serial, failed: &mut Failures) {
        let events = self.feed_of(serial);
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
    }

    /// (d) one audit claim per real change after the setup, made by the
    /// same call (same time) and naming the same new status.
    fn one_claim_per_change(&self, serial: &Serial, failed: &mut Failures) {
        let mut changes: Vec<(i64, &str)> = self
            .feed_of(serial)
            .windows(2)
            .filter(|s| s[1].id > self.checker.feed_mark && s[1].status != s[0].status)
            .map(|s| (s[1].at.unix_timestamp(), s[1].status.as_str()))
            .collect();
        let claims = self.checker.claims.get(&serial.to_hex()).map(Vec::as_slice).unwrap_or(&[]);
        let mut claimed: Vec<(i64, &str)> = claims
            .iter()
            .filter(|c| !c.via_escalation || !claims.iter().any(|o| !o.via_escalation && o.at == c.at && o.to == c.to))
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

    fn check_call(&self, call: &Call, failed: &mut Failures) {
        let op = call.op.name();
        let written = self.written_by(call);
        let effect = match &call.result {
            Err(e) => {
                if !matches!(e, StoreError::Rule(_) | StoreError::Conflict(_) | StoreError::Enrollment(_)) {
                    failed.push((E, format!("{op} failed with: {e}")));
                }
                if !written.is_empty() {
                    failed.push((D, format!("{op} failed yet feed rows carry its time: {written:?}")));
                }
                return;
            }
            Ok(effect) => effect,
        };
        match effect {
            Effect::Status { status, changed } => self.status_effect(call, *status, *changed, &written, failed),
            Effect::Changed(listed) => self.changed_effect(call, listed, &written, failed),
            Effect::Issued(new) => self.issued_effect(call, new, &written, failed),
        }
    }

    fn status_effect(
        &self,
        call: &Call,
        status: CertStatus,
        changed: bool,
        written: &[(Serial, CertStatus)],
        failed: &mut Failures,
    ) {
        let op = call.op.name();
        let (wanted, label): (fn(CertStatus) -> bool, &str) = match call.op {
            Op::Revoke => (|s| matches!(s, CertStatus::Revoked | CertStatus::Superseded), "revoked"),
            Op::Hold => (|s| s == CertStatus::OnHold, "on_hold"),
            _ => (|s| s == CertStatus::Valid, "valid"),
        };
        if !wanted(status) {
            failed.push((B, format!("{op} returned Ok but reports the certificate {status}, not {label}")));
        }
        let final_status = self.status_of(&self.round.world.serial);
        if call.op == Op::Revoke && !revoked(final_status) {
            failed.push((
                B,
                format!("revoke returned Ok (changed: {changed}) but the certificate ends {final_status:?}"),
            ));
        }
        // The round's claimed escalation holds the certificate from the start;
        // once it is resolved the certificate is valid or revoked, so no
        // release of it can change anything.
        if call.op == Op::Release
            && changed
            && let Some(id) = self.round.world.escalation
        {
            failed.push((F, format!("release lifted the hold although escalation {id} held the certificate")));
        }
        // A revoke that met a renewal answers Ok only when nothing of the
        // device still works; otherwise it is refused naming the newer one.
        if call.op == Op::Revoke && status == CertStatus::Superseded {
            let w = &self.round.world;
            let left = self.live_of(&|c| c.device == w.device.0);
            if !left.is_empty() {
                failed.push((B, format!("revoke of superseded {} returned Ok while {left:?} live", w.serial)));
            }
        }
        let expected_rows = usize::from(changed);
        if written.len() != expected_rows || written.iter().any(|(_, s)| !wanted(*s)) {
            failed.push((D, format!("{op} returned changed: {changed} and wrote these feed rows: {written:?}")));
        }
    }

    fn changed_effect(&self, call: &Call, listed: &[Serial], written: &[(Serial, CertStatus)], failed: &mut Failures) {
        let op = call.op.name();
        let listed: BTreeSet<&Serial> = listed.iter().collect();
        let wrote: BTreeSet<&Serial> = written.iter().map(|(s, _)| s).collect();
        if listed != wrote || written.len() != wrote.len() {
            failed.push((D, format!("{op} reports {listed:?} as changed but wrote feed rows {written:?}")));
        }
        match call.op {
            Op::Lost | Op::ResolveRevoked | Op::Retire | Op::Close | Op::Suspend => self.nothing_live(call, failed),
            Op::HoldLimit => self.hold_limit(call, &listed, failed),
            Op::Resume => self.resumed(failed),
            Op::ResolveReleased | Op::Report => {}
            other => unreachable!("{other:?} does not return a list"),
        }
        // Whatever a call says it revoked stays revoked.
        if matches!(call.op, Op::Lost | Op::Retire | Op::Close | Op::ResolveRevoked | Op::HoldLimit) {
            for serial in &listed {
                let status = self.status_of(serial);
                if !revoked(status) {
                    failed.push((B, format!("{op} reports {serial} revoked but it ends {status:?}")));
                }
            }
        }
    }

    /// (c) after a loss report, retirement, closure or suspension that
    /// returned Ok, its subject ends in the new state with nothing live.
    fn nothing_live(&self, call: &Call, failed: &mut Failures) {
        let (op, w, snap) = (call.op.name(), &self.round.world, self.snap);
        let facility = snap.facilities.get(&w.facility.0).map(String::as_str);
        match call.op {
            Op::Lost | Op::ResolveRevoked => {
                let device = snap.devices.get(&w.device.0).map(String::as_str);
                if device != Some("lost") {
                    failed.push((C, format!("{op} returned Ok but device {} ends {device:?}", w.device)));
                }
                let left = self.live_of(&|c| c.device == w.device.0);
                if !left.is_empty() {
                    failed.push((C, format!("{op} returned Ok but the device still has live {left:?}")));
                }
            }
            Op::Retire => {
                let user = snap.users.get(&w.user.0).map(String::as_str);
                if !matches!(user, Some("retired" | "deleted")) {
                    failed.push((C, format!("retirement returned Ok but user {} ends {user:?}", w.user)));
                }
                let left = self.live_of(&|_| true);
                if !left.is_empty() {
                    failed.push((C, format!("retirement returned Ok but the user still has live {left:?}")));
                }
            }
            Op::Close => {
                if facility != Some("closed") {
                    failed.push((C, format!("close returned Ok but facility {} ends {facility:?}", w.facility)));
                }
                let left = self.live_of(&|_| true);
                if !left.is_empty() {
                    failed.push((C, format!("close returned Ok but the facility still has live {left:?}")));
                }
            }
            _ => {
                if !matches!(facility, Some("suspended" | "closed")) {
                    failed.push((C, format!("suspend returned Ok but facility {} ends {facility:?}", w.facility)));
                }
                // Whatever the other call did, before or after: a suspension
                // leaves nothing of the facility valid.
                let valid: Vec<String> = self
                    .mine
                    .iter()
                    .filter(|(_, c)| c.status == CertStatus::Valid)
                    .map(|(s, _)| s.to_string())
                    .collect();
                if !valid.is_empty() {
                    failed.push((C, format!("suspend returned Ok but {valid:?} of the facility end valid")));
                }
            }
        }
    }

    /// (c) a resume that returned Ok leaves the facility approved.
    fn resumed(&self, failed: &mut Failures) {
        let w = &self.round.world;
        let facility = self.snap.facilities.get(&w.facility.0).map(String::as_str);
        if facility != Some("approved") {
            failed.push((C, format!("resume returned Ok but facility {} ends {facility:?}", w.facility)));
        }
    }

    /// (b) the hold limit revokes holds only, and leaves none older than it.
    fn hold_limit(&self, call: &Call, listed: &BTreeSet<&Serial>, failed: &mut Failures) {
        let w = &self.round.world;
        for serial in listed {
            // The row this run wrote must follow a hold: a certificate
            // released first is no longer held.
            for step in self.feed_of(serial).windows(2) {
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
        // A suspended facility's holds wait for its resume.
        let suspended = self.snap.facilities.get(&w.facility.0).map(String::as_str) == Some("suspended");
        if let Some(row) = self.snap.certs.get(&w.serial)
            && row.status == CertStatus::OnHold
            && row.revoked_at <= held_before
            && !suspended
        {
            failed.push((B, format!("hold limit returned Ok but {} is still held since {}", w.serial, row.revoked_at)));
        }
    }

    fn issued_effect(&self, call: &Call, new: &Serial, written: &[(Serial, CertStatus)], failed: &mut Failures) {
        let (op, w) = (call.op.name(), &self.round.world);
        let Some(row) = self.snap.certs.get(new) else {
            failed.push((B, format!("{op} returned Ok for {new} but no such certificate is stored")));
            return;
        };
        let mut expected = vec![(new.clone(), CertStatus::Valid)];
        if call.op == Op::Renew {
            let old = self.status_of(&w.serial);
            if old != Some(CertStatus::Superseded) {
                failed.push((B, format!("renewal returned Ok but the old certificate ends {old:?}")));
            }
            expected.push((w.serial.clone(), CertStatus::Superseded));
        }
        let by_serial_then_status =
            |x: &(Serial, CertStatus), y: &(Serial, CertStatus)| (&x.0, x.1.as_str()).cmp(&(&y.0, y.1.as_str()));
        let mut wrote = written.to_vec();
        wrote.sort_by(by_serial_then_status);
        expected.sort_by(by_serial_then_status);
        if wrote != expected {
            failed.push((D, format!("{op} wrote feed rows {written:?}, expected {expected:?}")));
        }
        // (c) a change that committed before the issuance forbids a usable
        // certificate; audit ids are taken in commit order.
        let issued = self
            .checker
            .audit
            .get(&format!("certificate:{new}"))
            .map(|rows| rows.iter().filter(|r| r.entry.action == AuditAction::CertificateIssue).collect::<Vec<_>>())
            .unwrap_or_default();
        let [issue] = issued.as_slice() else {
            failed.push((D, format!("{new} has {} certificate.issue audit rows, not one", issued.len())));
            return;
        };
        for blocker in self.blockers(call) {
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

    /// The audit rows of changes that forbid the call's issuance.
    fn blockers(&self, call: &Call) -> Vec<&'a AuditRecord> {
        let w = &self.round.world;
        let mut blockers: Vec<&AuditRecord> = Vec::new();
        let mut add = |target: String, wanted: &dyn Fn(&AuditRecord) -> bool| {
            blockers.extend(self.checker.audit.get(&target).into_iter().flatten().filter(|r| wanted(r)));
        };
        add(format!("facility:{}", w.facility), &|r| {
            matches!(r.entry.action, AuditAction::FacilityClose | AuditAction::FacilitySuspend)
        });
        add(format!("user:{}", w.user), &|r| r.entry.action == AuditAction::UserRetire);
        if call.op == Op::Renew {
            add(format!("device:{}", w.device), &|r| r.entry.action == AuditAction::DeviceLost);
            if let Some(id) = w.escalation {
                add(format!("escalation:{id}"), &|r| {
                    r.entry.action == AuditAction::EscalationResolve && r.entry.detail["outcome"] == "revoked"
                });
            }
        }
        blockers
    }
}
