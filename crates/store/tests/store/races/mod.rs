//! Races between the operations that decide a certificate's fate (issue
//! "Revocation that no race can undo").
//!
//! Every unordered pair of revoke, hold, release, lost device, retirement,
//! facility close, renewal, escalation resolved (released and revoked), hold
//! limit, enrollment and emergency report — plus facility suspension against
//! enrollment, renewal, release, an escalation released, the hold limit and a
//! report, and the resume of a suspended facility against a report, revoke,
//! renewal and enrollment — runs concurrently `ROUNDS` times on each backend,
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
//!   a closed facility, nothing valid to a suspended one, those stay lost,
//!   retired, closed and suspended, and no certificate issued after a
//!   suspension, closure, loss or retirement committed is valid;
//! - (d) audit rows and returned lists match the real changes one for one;
//! - (e) no raced call fails with a database error: the store settles a race
//!   itself instead of handing it to the caller as a server error;
//! - (f) no certificate is valid while an open or claimed escalation holds
//!   it: only the escalation's resolution lifts its hold. A release racing a
//!   report of a valid certificate (`from Valid`) either comes first and
//!   changes nothing, or is refused. A report that meets a suspension, and a
//!   resume that meets a report, leave the hold with the report either way.
//!
//! Rounds stay cheap because each has a world of its own — facility, user,
//! device, certificate, and the hold, claimed escalation or enrollment code it
//! starts from — all inserted up front in one transaction, as the Store API
//! would have written them; only the raced calls go through the API,
//! `ROUNDS_AT_ONCE` rounds side by side. Each raced call gets a timestamp of
//! its own, so every feed and audit row can be traced to the call that wrote
//! it, and audit ids, taken in commit order, tell which call committed first.
mod checks;
mod ops;
mod pairs;
mod round;
mod setup;
mod snapshot;
mod world;

use connect_pki_store::both_backends;
use connect_pki_store::testing::TestDb;

use pairs::{race_pair, race_pairs};
use world::{Op, Plan, Start};

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
    release_vs_report_of_valid: Release vs Report from Valid;
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
    suspend_vs_release: Suspend vs Release;
    suspend_vs_escalation_released: Suspend vs ResolveReleased;
    suspend_vs_hold_limit: Suspend vs HoldLimit;
    suspend_vs_report: Suspend vs Report;
    resume_vs_report: Resume vs Report;
    resume_vs_revoke: Resume vs Revoke;
    resume_vs_renew: Resume vs Renew;
    resume_vs_enroll: Resume vs Enroll;
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
