//! `connect-pki ca rollover`: a new generation of the issuing CA under the
//! same root, before the current one runs out.
//!
//! The new CA issues every certificate from the next start on. The older
//! ones stay in the data directory with their keys: they issue nothing more,
//! but keep signing their own CRL (`/crl/issuing.crl`, `/crl/issuing-2.crl`,
//! …, the URL their certificates carry) and keep their own OCSP signer, so
//! every certificate they issued can still be checked and revoked until it
//! runs out. `/ca/chain.pem` carries every generation.
//!
//! With the root key in the data directory the rollover is one step. With
//! the root kept offline it is two: `--csr-out` leaves the new key here
//! (encrypted, `.pending`) and writes a CSR for the root's operator;
//! `--import` checks the signed certificate against that key and the root,
//! and installs it.
//!
//! The generation's certificate file is written last: until it exists the
//! generation does not (`DataDir::generations`), so an interrupted rollover
//! leaves the data directory as it was. A rollover holds the CA lock, as a
//! renewal and a start do.

use anyhow::{Context, anyhow, bail, ensure};
use connect_pki_ca::hierarchy::{HierarchyNames, ocsp_signer, successor_csr, successor_issuing_ca};
use connect_pki_ca::issue::to_pem;
use connect_pki_ca::{CaKey, IssuingCa, Profile};
use time::OffsetDateTime;

use crate::datadir::keys::Keys;
use crate::datadir::{DataDir, issuing_file, ocsp_file, replace_file};

/// The generation a rollover created.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RolledOver {
    pub generation: u32,
    /// Its name in file names and URLs (`issuing-2`).
    pub name: String,
    pub subject: String,
    pub not_after: String,
    pub sha256: String,
}

/// The next generation, signed by the root key in the data directory.
pub fn rollover(dir: &DataDir, public_url: &str, now: OffsetDateTime) -> anyhow::Result<RolledOver> {
    let loaded = dir.load(public_url)?;
    // Two rollovers at once on one data directory would both make the same
    // generation; the second waits and makes the next.
    let _one_at_a_time = dir.lock_ca()?;
    let keys = &loaded.keys;
    let root_key = Keys::root_of(dir, keys).and_then(|root| root.load(dir, "root")).map_err(|e| {
        anyhow!("the root key is not at hand ({e:#}): with the root offline, use --csr-out and --import")
    })?;
    let generation = next_generation(dir);
    let profile = Profile::new(public_url)?;
    let (der, key) = successor_issuing_ca(&loaded.root_der, root_key, &profile, generation, keys.generator(), now)?;
    install(dir, &loaded.root_der, profile, generation, der, key, keys, now)
}

/// The first half of an offline rollover: the new key, kept here encrypted
/// (or in the token, with its public key here) and pending, and a CSR (PEM)
/// for the root's operator to sign.
pub fn request(dir: &DataDir, public_url: &str) -> anyhow::Result<(u32, String)> {
    let _one_at_a_time = dir.lock_ca()?;
    let keys = Keys::of(dir)?;
    let generation = next_generation(dir);
    let (csr, key) = successor_csr(&Profile::new(public_url)?, generation, keys.generator())?;
    replace_file(&pending_key(dir, generation), keys.reference(&key)?.as_bytes(), 0o600)?;
    Ok((generation, csr))
}

/// The second half: installs the certificate the root's operator signed for
/// the pending key, once it is shown to be a CA certificate for that key
/// signed by our root.
pub fn import(dir: &DataDir, public_url: &str, cert_pem: &str, now: OffsetDateTime) -> anyhow::Result<RolledOver> {
    let loaded = dir.load(public_url)?;
    let _one_at_a_time = dir.lock_ca()?;
    let generation = next_generation(dir);
    let pending = pending_key(dir, generation);
    let key_pem = std::fs::read_to_string(&pending)
        .map_err(|e| anyhow!("no pending key {} ({e}): run `ca rollover --csr-out` first", pending.display()))?;
    let key = loaded.keys.open_reference(&key_pem, &pending)?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow!("the signed certificate is not PEM: {e}"))?;
    let der = pem.contents;
    {
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow!("not a certificate: {e}"))?;
        let (_, root) = x509_parser::parse_x509_certificate(&loaded.root_der).context("the root certificate")?;
        ensure!(cert.public_key().raw == key.public_key_der().as_slice(), "the certificate is not for the pending key");
        ensure!(cert.issuer() == root.subject(), "the certificate was issued by {}, not by our root", cert.issuer());
        cert.verify_signature(Some(root.public_key()))
            .map_err(|e| anyhow!("the root's signature on the certificate does not verify: {e}"))?;
        ensure!(cert.is_ca(), "the certificate is not a CA certificate (basicConstraints CA:TRUE)");
        ensure!(cert.validity().is_valid_at(now.into()), "the certificate is not valid now");
    }
    let done = install(dir, &loaded.root_der, Profile::new(public_url)?, generation, der, key, &loaded.keys, now)?;
    std::fs::remove_file(&pending).with_context(|| format!("removing {}", pending.display()))?;
    Ok(done)
}

/// Writes the new generation: key, OCSP signer, then the certificate.
#[allow(clippy::too_many_arguments)]
fn install(
    dir: &DataDir,
    root_der: &[u8],
    profile: Profile,
    generation: u32,
    der: Vec<u8>,
    key: CaKey,
    keys: &Keys,
    now: OffsetDateTime,
) -> anyhow::Result<RolledOver> {
    let name = issuing_file(generation);
    let ca = IssuingCa::new(der.clone(), key.clone_key()?, root_der.to_vec(), profile)?.with_generation(generation);
    let (ocsp_der, ocsp_key) = ocsp_signer(&ca, keys.generator(), now, HierarchyNames::default().service_validity)?;
    let ocsp = ocsp_file(generation);
    for (file, key) in [(&name, &key), (&ocsp, &ocsp_key)] {
        if let Some(pem) = keys.key_file(key)? {
            replace_file(&dir.ca(&format!("{file}.key.pem")), pem.as_bytes(), 0o600)?;
        }
    }
    replace_file(&dir.ca(&format!("{ocsp}.pem")), to_pem("CERTIFICATE", &ocsp_der).as_bytes(), 0o644)?;
    replace_file(&dir.ca(&format!("{name}.pem")), to_pem("CERTIFICATE", &der).as_bytes(), 0o644)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).context("the new CA certificate")?;
    Ok(RolledOver {
        generation,
        name,
        subject: cert.subject().to_string(),
        not_after: cert.validity().not_after.to_datetime().format(&time::format_description::well_known::Rfc3339)?,
        sha256: crate::admin::init::fingerprint(&der),
    })
}

fn next_generation(dir: &DataDir) -> u32 {
    dir.generations().last().copied().unwrap_or(1) + 1
}

fn pending_key(dir: &DataDir, generation: u32) -> std::path::PathBuf {
    dir.ca(&format!("{}.key.pem.pending", issuing_file(generation)))
}

/// Refuses a second rollover while one is pending offline.
pub fn ensure_nothing_pending(dir: &DataDir) -> anyhow::Result<()> {
    let pending = pending_key(dir, next_generation(dir));
    if pending.exists() {
        bail!("a rollover is pending ({}): import its signed certificate first", pending.display());
    }
    Ok(())
}
