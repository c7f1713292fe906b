//! One-time secrets: enrollment codes, PKCS#12 passwords, status tokens; and
//! account passwords (argon2id).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use connect_pki_domain::UserId;
use connect_pki_domain::enrollment::format_secret;
use connect_pki_store::NewCode;
use time::{Duration, OffsetDateTime};

use crate::service::error::ServiceError;

/// A freshly generated enrollment code: the half shown to a person and the
/// half stored.
pub struct FreshCode {
    /// `XXXX-XXXX-XXXX-XXXX`; the full code is `{id}-{secret}`.
    pub secret: String,
    pub stored: NewCode,
}

connect_pki_domain::redacted_debug!(FreshCode { stored; secret });

/// SHA-256 (hex) of a normalised code secret.
pub fn code_hash(normalised_secret: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(normalised_secret.as_bytes()))
}

/// A new code for `user`, valid for `ttl` from `now`.
pub fn new_code(user: UserId, ttl: Duration, now: OffsetDateTime) -> Result<FreshCode, ServiceError> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let secret = format_secret(&random);
    let stored = NewCode { user, secret_hash: code_hash(&secret.replace('-', "")), expires_at: now + ttl };
    Ok(FreshCode { secret, stored })
}

impl FreshCode {
    /// The same secret bound to another user (for a user created in the
    /// same transaction, whose id is known only there).
    pub fn for_user(&self, user: UserId) -> NewCode {
        NewCode { user, ..self.stored.clone() }
    }

    /// The code as handed to a person.
    pub fn display(&self, id: i64) -> String {
        format!("{id}-{}", self.secret)
    }
}

/// Hashes an account password with argon2id (the crate's defaults: 19 MiB,
/// 2 passes), off the async threads.
pub async fn hash_password(password: String) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Internal(anyhow::anyhow!("password hashing task: {e}")))?
}

/// Whether `password` matches the stored argon2 PHC string.
pub async fn verify_password(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}
