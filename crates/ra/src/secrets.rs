//! One-time secrets: enrollment codes, PKCS#12 passwords, status tokens; and
//! account passwords (argon2id).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use connect_pki_domain::UserId;
use connect_pki_domain::enrollment::format_secret;
use connect_pki_store::NewCode;
use time::{Duration, OffsetDateTime};

use crate::error::ServiceError;

/// `n` random bytes as URL-safe base64 (a password or passphrase).
pub fn random_secret(n: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A freshly generated enrollment code: the half shown to a person and the
/// half stored.
pub struct FreshCode {
    /// `XXXX-XXXX-XXXX-XXXX`: the whole code. It is found by its hash, so no
    /// id travels with it that a stranger could guess and aim at.
    pub(crate) secret: String,
    pub stored: NewCode,
}

connect_pki_domain::redacted_debug!(FreshCode { stored; secret });

/// SHA-256 (hex) of a normalised code secret.
pub(crate) fn code_hash(normalised_secret: &str) -> String {
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
    pub(crate) fn for_user(&self, user: UserId) -> NewCode {
        NewCode { user, ..self.stored.clone() }
    }

    /// The code as handed to a person.
    pub fn display(&self) -> String {
        self.secret.clone()
    }
}

/// CPU work anyone can ask for (argon2, generating a key), run at most one
/// per CPU at once on the blocking pool that CRL signing also uses: a flood
/// of sign-ins or enrollments waits here, on the async side, instead of
/// filling that pool.
#[derive(Debug)]
pub(crate) struct Bounded(std::sync::Arc<tokio::sync::Semaphore>);

impl Bounded {
    pub(crate) fn per_cpu() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(cpus)))
    }

    /// `work` (named `what` in errors) off the async threads, under a permit
    /// that moves into the blocking task: a caller that goes away (a dropped
    /// connection) does not free it while the work still runs.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let permit = self
            .0
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("{what} permits: {e}")))?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("{what} task: {e}")))
    }
}

/// argon2 runs (each ~19 MiB and a CPU for tens of milliseconds), bounded
/// for the whole process.
static ARGON2: std::sync::LazyLock<Bounded> = std::sync::LazyLock::new(Bounded::per_cpu);

async fn argon2_run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ServiceError> {
    ARGON2
        .run("argon2", move || {
            #[cfg(test)]
            let _running = tests::Running::start();
            work()
        })
        .await
}

/// Hashes an account password with argon2id (the crate's defaults: 19 MiB,
/// 2 passes).
pub(crate) async fn hash_password(password: String) -> Result<String, ServiceError> {
    argon2_run(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("password hashing failed: {e}")))
    })
    .await?
}

/// Whether `password` matches the stored argon2 PHC string.
pub(crate) async fn verify_password(password: String, stored: String) -> bool {
    argon2_run(move || {
        PasswordHash::new(&stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    /// Counts an argon2 run from start to drop, keeping the peak.
    pub(super) struct Running;

    impl Running {
        pub(super) fn start() -> Self {
            let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
            PEAK.fetch_max(now, Ordering::SeqCst);
            Running
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn argon2_never_runs_more_than_its_bound_at_once() {
        let bound = super::ARGON2.0.available_permits();
        let hash = super::hash_password("a password of some length".into()).await.expect("hash");
        let guesses: Vec<_> = (0..bound * 4 + 4)
            .map(|i| tokio::spawn(super::verify_password(format!("guess {i}"), hash.clone())))
            .collect();
        for g in guesses {
            assert!(!g.await.expect("task"));
        }
        let peak = PEAK.load(Ordering::SeqCst);
        assert!(peak >= 1 && peak <= bound, "{peak} argon2 runs at once, bound {bound}");
    }
}
