//! The invariants checked after each batch of rounds and once at the end,
//! and the verdict of a pair.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use super::round::RoundView;
use super::snapshot::*;
use super::world::*;
use connect_pki_domain::{CertStatus, Reason, Serial};
use connect_pki_store::{AuditRecord, CertEvent, Store};
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
pub(super) const F: &str = "(f) no certificate is valid while an open escalation holds it";

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
        let failed = RoundView::new(self, round, snap).check();
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
