//! The store's one error type; sqlx errors are wrapped here and nowhere else.

use connect_pki_domain::{FacilityId, Serial, UserId};

/// What went wrong in the database layer. sqlx errors never leave this crate
/// except wrapped here, and unique-key violations become [`StoreError::Conflict`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Nothing matches the key.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken (a login ID, a serial), or a racing change won.
    #[error("{0}")]
    Conflict(Conflict),
    /// `init` on a database that already holds a CA installation.
    #[error("the database already holds a connect-pki installation; refusing to initialise it again")]
    AlreadyInitialised,
    /// The URL or settings are unusable.
    #[error("database configuration: {0}")]
    Config(String),
    /// The database could not be reached.
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// A stored value does not parse (a bug or a hand edit).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The operation does not exist on this backend.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A domain rule refused the change (a lifecycle step that does not exist).
    #[error("{0}")]
    Rule(connect_pki_domain::DomainError),
    /// An enrollment code could not be redeemed.
    #[error("{0}")]
    Enrollment(connect_pki_domain::enrollment::Refusal),
    /// A renewal over the device's hourly limit.
    #[error("{0}")]
    TooManyRenewals(connect_pki_domain::enrollment::TooManyRenewals),
    /// The writer lock (or a connection) was not free within
    /// [`crate::WRITE_WAIT`]: another transaction holds it, perhaps stalled.
    /// Nothing was changed.
    #[error("the database is busy with another change (the writer lock was not free within {} s); nothing was changed", crate::WRITE_WAIT.as_secs())]
    Busy,
    /// Any other database failure.
    #[error("database error: {0}")]
    Backend(sqlx::Error),
}

/// Why a change conflicts with what is stored. The messages are part of the
/// API's responses: keep them as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// Another user (or a pending application) has this login ID.
    #[error("login ID {login_id:?} is already taken")]
    LoginIdTaken { login_id: String },
    /// A racing claim of the same escalation won.
    #[error("escalation {escalation} was already claimed by user {by}")]
    AlreadyClaimed { escalation: i64, by: UserId },
    /// The escalation is no longer open (and nobody holds a claim on it).
    #[error("escalation {escalation} is {status}")]
    NotOpen { escalation: i64, status: String },
    /// The facility's status changed between the read and the update.
    #[error("facility {facility} changed concurrently; reload and retry")]
    FacilityChanged { facility: FacilityId },
    /// The certificate being renewed changed between the check and the supersede.
    #[error("certificate {serial} changed during renewal")]
    RenewalRaced { serial: Serial },
    /// The certificate is on hold for an escalation that is still open or
    /// claimed: only that escalation's resolution lifts the hold.
    #[error("certificate {serial} is held by escalation {escalation}; only its resolution lifts the hold")]
    HeldByEscalation { escalation: i64, serial: Serial },
    /// The certificate is kept on hold by its facility's suspension: only
    /// the facility's resume lifts the hold.
    #[error(
        "certificate {serial} is on hold while facility {facility} is suspended; resuming the facility lifts the hold"
    )]
    HeldBySuspension { facility: FacilityId, serial: Serial },
    /// 行政管理課 put the certificate on hold itself: only 行政管理課 lifts it.
    #[error("certificate {serial} was put on hold by the city's IT division; only it lifts the hold")]
    HeldByCity { serial: Serial },
    /// A revoke named a superseded certificate while its device has a newer
    /// one in force (`domain::certificate::revoke_instead`).
    #[error(
        "certificate {serial} was superseded by {current}, which is still in force; revoke {current} (or report the device lost) to cut the device off"
    )]
    SupersededBy { serial: Serial, current: Serial },
    /// A signed webhook already carried out within the replay window.
    #[error("this webhook was already received (the same signature within the replay window)")]
    Replayed,
    /// Any other unique value (named by its constraint) already exists.
    #[error("{what} already exists")]
    Exists { what: String },
}

impl From<Conflict> for StoreError {
    fn from(c: Conflict) -> Self {
        StoreError::Conflict(c)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.kind() == sqlx::error::ErrorKind::UniqueViolation
        {
            let what = db.constraint().map(str::to_string).unwrap_or_else(|| db.message().to_string());
            return Conflict::Exists { what }.into();
        }
        if let sqlx::Error::RowNotFound = e {
            return StoreError::NotFound("row");
        }
        // PostgreSQL's lock_timeout (lock_not_available), SQLite's busy
        // timeout (SQLITE_BUSY) and a pool with no free connection: waits
        // that ran out.
        let ran_out = match &e {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => {
                db.code().is_some_and(|c| c == "55P03" || c == "5" || c == "517")
                    || db.message().contains("database is locked")
            }
            _ => false,
        };
        if ran_out {
            return StoreError::Busy;
        }
        StoreError::Backend(e)
    }
}

impl From<connect_pki_domain::DomainError> for StoreError {
    fn from(e: connect_pki_domain::DomainError) -> Self {
        StoreError::Rule(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_read_as_the_api_has_always_shown_them() {
        let serial: Serial = "0a0b".parse().expect("serial");
        let cases = [
            (Conflict::LoginIdTaken { login_id: "hanako".into() }, r#"login ID "hanako" is already taken"#),
            (Conflict::AlreadyClaimed { escalation: 7, by: UserId(3) }, "escalation 7 was already claimed by user 3"),
            (Conflict::NotOpen { escalation: 7, status: "resolved".into() }, "escalation 7 is resolved"),
            (
                Conflict::FacilityChanged { facility: FacilityId(2) },
                "facility 2 changed concurrently; reload and retry",
            ),
            (Conflict::RenewalRaced { serial: serial.clone() }, "certificate 0a0b changed during renewal"),
            (
                Conflict::HeldByEscalation { escalation: 7, serial: serial.clone() },
                "certificate 0a0b is held by escalation 7; only its resolution lifts the hold",
            ),
            (
                Conflict::HeldBySuspension { facility: FacilityId(4), serial: serial.clone() },
                "certificate 0a0b is on hold while facility 4 is suspended; resuming the facility lifts the hold",
            ),
            (
                Conflict::HeldByCity { serial: serial.clone() },
                "certificate 0a0b was put on hold by the city's IT division; only it lifts the hold",
            ),
            (
                Conflict::SupersededBy { serial, current: "0c".parse().expect("serial") },
                "certificate 0a0b was superseded by 0c, which is still in force; revoke 0c (or report the device \
                 lost) to cut the device off",
            ),
            (Conflict::Exists { what: "certificates_pkey".into() }, "certificates_pkey already exists"),
        ];
        for (conflict, message) in cases {
            assert_eq!(StoreError::from(conflict).to_string(), message);
        }
    }
}
