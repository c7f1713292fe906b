/// What went wrong in the database layer. sqlx errors never leave this crate
/// except wrapped here, and unique-key violations become [`StoreError::Conflict`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Nothing matches the key.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique value is taken (a login ID, a serial), or a racing change won.
    #[error("{0}")]
    Conflict(String),
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
    /// A domain rule refused the change (a lifecycle step that does not exist).
    #[error("{0}")]
    Rule(connect_pki_domain::DomainError),
    /// An enrollment code could not be redeemed.
    #[error("{0}")]
    Enrollment(connect_pki_domain::enrollment::Refusal),
    /// Any other database failure.
    #[error("database error: {0}")]
    Backend(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.kind() == sqlx::error::ErrorKind::UniqueViolation
        {
            let what = db.constraint().map(str::to_string).unwrap_or_else(|| db.message().to_string());
            return StoreError::Conflict(format!("{what} already exists"));
        }
        if let sqlx::Error::RowNotFound = e {
            return StoreError::NotFound("row");
        }
        StoreError::Backend(e)
    }
}

impl From<connect_pki_domain::DomainError> for StoreError {
    fn from(e: connect_pki_domain::DomainError) -> Self {
        StoreError::Rule(e)
    }
}
