//! What every round shares: the constants, serial and time helpers, the raced
//! operations and sides, a pair's plan, a world and a raced call's record.

use connect_pki_domain::{CertStatus, DeviceId, FacilityId, Reason, Serial, UserId};
use connect_pki_store::{NewCertificate, StoreError};
use time::OffsetDateTime;

/// Rounds per pair and backend (the issue asks for at least 200).
pub(super) const ROUNDS: usize = 200;
/// Rounds raced side by side (two calls each), checked together afterwards.
pub(super) const ROUNDS_AT_ONCE: usize = 20;
/// Feed and audit rows read per request.
pub(super) const PAGE: i64 = 10_000;

/// When the worlds are created.
pub(super) const SETUP: i64 = 1_780_000_000;
/// Holds of rounds that race the hold limit begin here plus the round, so that
/// a round's limit reaches its own hold and no later round's.
pub(super) const HOLD_LIMIT_HOLDS: i64 = 1_781_000_000;
/// Holds of every other round: later than any hold limit's cut-off.
pub(super) const SETUP_HOLDS: i64 = 1_785_000_000;
/// Raced calls run at this plus ten seconds a round plus one for A, two for B.
pub(super) const RACE: i64 = 1_790_000_000;

/// Serial kinds (second byte): the bootstrap admin's, a world's, a renewal's
/// and an enrollment's. The round is in bytes 2–3 so a stray certificate names it.
pub(super) const KIND_ADMIN: u8 = 0x10;
pub(super) const KIND_WORLD: u8 = 0x11;
pub(super) const KIND_RENEWAL: u8 = 0x12;
pub(super) const KIND_ENROLLMENT: u8 = 0x13;

pub(super) fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("valid time")
}

pub(super) fn serial_of(kind: u8, round: usize, side: u8) -> Serial {
    let r = u16::try_from(round).expect("round fits two bytes").to_be_bytes();
    Serial::from_bytes(&[0x40, kind, r[0], r[1], side, 0x01]).expect("serial")
}

pub(super) fn round_of(serial: &Serial) -> Option<usize> {
    let b = serial.as_bytes();
    (b.len() == 6 && b[0] == 0x40 && b[1] != KIND_ADMIN).then(|| usize::from(u16::from_be_bytes([b[2], b[3]])))
}

pub(super) fn fake_cert(serial: Serial, issued: OffsetDateTime) -> NewCertificate {
    NewCertificate {
        der: vec![0x30, serial.as_bytes()[1], serial.as_bytes()[3]],
        serial,
        not_before: issued,
        not_after: issued + time::Duration::days(365),
        ca_generation: 1,
    }
}

/// Whether a certificate in this state still identifies its holder to anyone.
pub(super) fn live(status: CertStatus) -> bool {
    matches!(status, CertStatus::Valid | CertStatus::OnHold)
}

/// Whether a certificate ends revoked for good (superseded is published as
/// revoked too); `None` when it does not exist at all.
pub(super) fn revoked(status: Option<CertStatus>) -> bool {
    matches!(status, Some(CertStatus::Revoked | CertStatus::Superseded))
}

pub(super) fn legal_step(from: CertStatus, to: CertStatus) -> bool {
    use CertStatus::*;
    matches!((from, to), (Valid, OnHold) | (Valid, Revoked) | (Valid, Superseded) | (OnHold, Valid) | (OnHold, Revoked))
}

pub(super) fn shown(status: CertStatus, reason: Option<Reason>) -> String {
    match reason {
        Some(r) => format!("{status}/{r}"),
        None => format!("{status}/-"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Revoke,
    Hold,
    Release,
    Lost,
    Retire,
    Close,
    Suspend,
    Resume,
    Renew,
    ResolveReleased,
    ResolveRevoked,
    HoldLimit,
    Enroll,
    Report,
}

impl Op {
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Revoke => "revoke",
            Op::Hold => "hold",
            Op::Release => "release",
            Op::Lost => "lost device",
            Op::Retire => "retirement",
            Op::Close => "facility close",
            Op::Suspend => "facility suspend",
            Op::Resume => "facility resume",
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
pub(super) enum Side {
    A,
    B,
}

impl Side {
    pub(super) fn byte(self) -> u8 {
        match self {
            Side::A => 0x0a,
            Side::B => 0x0b,
        }
    }

    pub(super) fn time(self, round: usize) -> OffsetDateTime {
        let offset = match self {
            Side::A => 1,
            Side::B => 2,
        };
        at(RACE + 10 * i64::try_from(round).expect("round") + offset)
    }
}

/// What the certificate looks like when the race starts: release and the
/// hold limit need a hold, resolving needs a claimed escalation (whose report
/// put the device's certificate on hold), resuming a suspended facility
/// (whose suspension put it on hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    Valid,
    OnHold,
    Escalated,
    Suspended,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) a: Op,
    pub(super) b: Op,
    pub(super) start: Start,
    /// The world's user is invited and has an enrollment code.
    pub(super) enrollment: bool,
    /// Rounds run one after another: the hold limit revokes every hold older
    /// than its cut-off, so a round must not see another round's hold.
    pub(super) hold_limit: bool,
}

impl Plan {
    pub(super) fn new(a: Op, b: Op) -> Self {
        let any = |op| a == op || b == op;
        let start = if any(Op::Resume) {
            Start::Suspended
        } else if any(Op::ResolveReleased) || any(Op::ResolveRevoked) {
            Start::Escalated
        } else if any(Op::Release) || any(Op::HoldLimit) {
            Start::OnHold
        } else {
            Start::Valid
        };
        Plan { a, b, start, enrollment: any(Op::Enroll), hold_limit: any(Op::HoldLimit) }
    }

    /// The same pair from another starting state.
    pub(super) fn from(self, start: Start) -> Self {
        Plan { start, ..self }
    }

    pub(super) fn name(&self) -> String {
        let derived = Plan::new(self.a, self.b).start;
        let from = if self.start == derived { String::new() } else { format!(" from {:?}", self.start) };
        format!("{} vs {}{from}", self.a.name(), self.b.name())
    }
}

/// One round's own facility, user, device and certificate.
#[derive(Debug, Clone)]
pub(super) struct World {
    pub(super) round: usize,
    pub(super) facility: FacilityId,
    pub(super) user: UserId,
    pub(super) device: DeviceId,
    pub(super) serial: Serial,
    pub(super) admin: UserId,
    pub(super) escalation: Option<i64>,
    /// Enrollment code id and secret hash.
    pub(super) code: Option<(i64, String)>,
    /// When the setup hold began, if there is one.
    pub(super) held_at: Option<OffsetDateTime>,
}

#[derive(Debug)]
pub(super) enum Effect {
    /// `change_certificate`: the status it reported and whether it changed it.
    Status { status: CertStatus, changed: bool },
    /// The certificates the call says it changed.
    Changed(Vec<Serial>),
    /// The certificate the call issued.
    Issued(Serial),
}

#[derive(Debug)]
pub(super) struct Call {
    pub(super) op: Op,
    pub(super) side: Side,
    pub(super) at: OffsetDateTime,
    pub(super) result: Result<Effect, StoreError>,
}

impl Call {
    pub(super) fn describe(&self) -> String {
        let result = match &self.result {
            Ok(effect) => format!("Ok({effect:?})"),
            Err(e) => format!("Err({e})"),
        };
        format!("{:?}={}@{} -> {result}", self.side, self.op.name(), self.at.unix_timestamp())
    }
}

pub(super) struct Round {
    pub(super) world: World,
    pub(super) calls: [Call; 2],
}
