//! The served CRL: built from the index, numbered in the database so that
//! several instances never give two different CRLs one number, and rebuilt
//! whenever what it lists changes and at half its validity.

use std::sync::Arc;
use std::time::Duration;

use connect_pki_ca::crl::CrlEntry;
use connect_pki_domain::{CertStatus, Reason};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::error::ResponderError;
use crate::index;
use crate::revocations::Revocations;

/// The CRL being served for one issuing CA.
#[derive(Debug)]
pub struct Crl {
    /// The issuing CA's name (`issuing`, `issuing-2`): the CRL's URL.
    pub ca: String,
    pub der: Vec<u8>,
    pub pem: String,
    pub number: i64,
    pub this_update: OffsetDateTime,
    pub(crate) next_update: OffsetDateTime,
    pub(crate) entries: usize,
    /// Feed position the CRL was built from: it lists every revocation up to it.
    pub(crate) position: i64,
}

impl Revocations {
    /// Builds the CRL of every issuing CA from the index and serves them.
    /// Each CRL number is taken for the index's position; if another
    /// instance already numbered a CRL built from a newer position, this one
    /// first catches up to it.
    pub(crate) async fn build_and_serve(&self) -> Result<(), ResponderError> {
        let _one_at_a_time = self.crl_build.lock().await;
        let now = self.clock.now();
        let (position, numbered) = 'numbering: loop {
            // Position first: the entries read after it reflect at least it.
            let position = self.applied();
            let mut numbered = Vec::with_capacity(self.cas.len());
            for ca in &self.cas {
                let generation = u8::try_from(ca.generation()).unwrap_or(u8::MAX);
                let entries = self.index.crl_entries(generation, now.unix_timestamp());
                match self.store.next_crl_number(position).await? {
                    // Never a number below one served (a database that went
                    // back): raised past it, and numbered again.
                    Ok(number) if self.crl_of(&ca.name()).is_some_and(|served| served.number >= number) => {
                        let served = self.crl_of(&ca.name()).map_or(0, |c| c.number);
                        self.store.raise_crl_number(served, position).await?;
                        continue 'numbering;
                    }
                    Ok(number) => numbered.push((ca.clone(), number, entries)),
                    Err(newer) => {
                        self.catch_up(newer).await?;
                        continue 'numbering;
                    }
                }
            }
            break (position, numbered);
        };
        let keep_in = self.keep_in.clone();
        let next_update = now + self.crl_validity;
        // Signing a CRL of 100 000 entries is CPU work: off the async threads.
        let crls = tokio::task::spawn_blocking(move || {
            numbered
                .into_iter()
                .map(|(ca, number, entries)| {
                    let count = entries.len();
                    let crl_entries = entries.into_iter().map(|(k, e)| CrlEntry {
                        serial: index::serial_bytes(k),
                        revoked_at: OffsetDateTime::from_unix_timestamp(e.at).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                        reason: match e.status {
                            CertStatus::OnHold => Reason::CertificateHold,
                            _ => e.reason.unwrap_or(Reason::Unspecified),
                        },
                    });
                    let der = ca.sign_crl(crl_entries, number.max(0) as u64, now, next_update)?;
                    // Kept before it is served, so a revocation the CRL shows is on
                    // disk by the time the call that made it returns. A failure to
                    // keep it must not stop the CRL from being served: it is an
                    // alert, not an outage.
                    if let Some(dir) = &keep_in {
                        let path = dir.join(format!("{}.crl", ca.name()));
                        if let Err(e) = keep(&path, &der) {
                            metrics::counter!("connect_pki_crl_keep_failures_total").increment(1);
                            tracing::error!(error = %e, path = %path.display(), "the CRL could not be kept in the data directory");
                        }
                    }
                    let pem = connect_pki_ca::issue::to_pem("X509 CRL", &der);
                    Ok(Arc::new(Crl {
                        ca: ca.name(),
                        der,
                        pem,
                        number,
                        this_update: now,
                        next_update,
                        entries: count,
                        position,
                    }))
                })
                .collect::<Result<Vec<_>, ResponderError>>()
        })
        .await??;
        tracing::debug!(position, crls = crls.len(), "CRLs rebuilt");
        if let Some(active) = crls.last() {
            self.crl.store(active.clone());
        }
        self.crls.store(Arc::new(crls));
        self.crl_served.send_replace(position);
        Ok(())
    }

    /// Rebuilds the CRL when the index has moved past what it lists, and on
    /// its own at half its validity so that it is never served past
    /// nextUpdate. A failed build is retried.
    pub(crate) async fn crl_builder(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let current = self.crl.load_full();
            let half: time::Duration = (current.next_update - current.this_update) / 2;
            let refresh_in: time::Duration = (current.this_update + half - self.clock.now()).max(time::Duration::ZERO);
            let refresh_in = Duration::try_from(refresh_in).unwrap_or(Duration::ZERO);
            let timer = tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.crl_kick.notified() => false,
                () = tokio::time::sleep(refresh_in) => true,
            };
            if !timer && self.covers(current.position, self.applied()) {
                continue;
            }
            if let Err(e) = self.build_and_serve().await {
                tracing::error!(error = %e, "CRL rebuild failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.crl_kick.notify_one();
            }
        }
    }
}

/// Replaces the file at `path` with `der`, durably: a new file beside it,
/// synced, renamed over it, and the directory synced.
fn keep(path: &std::path::Path, der: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    // Instances sharing a data directory each write their own file first.
    let tmp = path.with_extension(format!("crl.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(der)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
