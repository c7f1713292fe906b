//! Rules of connect-pki: identifiers, roles, lifecycles and who may do what.
//!
//! No I/O lives here: no tokio, no sqlx, no HTTP, no cryptography. Every other
//! crate depends on this one, never the other way round.

pub mod application;
pub mod calendar;
pub mod certificate;
pub mod city_desk;
pub mod clock;
pub mod enrollment;
pub mod error;
pub mod escalation;
pub mod expiry;
pub mod hold;
pub mod ids;
pub mod lifetime;
pub mod model;
pub mod policy;
pub mod redact;
pub mod renewal;
pub mod sign_in;
pub mod user;
pub mod validate;

pub use clock::{Clock, FixedClock, SystemClock};
pub use error::DomainError;
pub use ids::{DeviceId, FacilityId, Serial, UserId};
pub use model::{
    ApplicationStatus, AuditAction, CertStatus, DeviceStatus, EscalationStatus, FacilityKind, FacilityStatus,
    NotifyChannel, Queue, Reason, Role, UserStatus,
};
pub use policy::{Action, Actor, Target, authorize};
