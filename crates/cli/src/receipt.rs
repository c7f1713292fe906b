//! `connect-pki receipt verify FILE`: checks a signed incident record.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use connect_pki_domain::clock::rfc3339;

fn root_der(root: Option<&Path>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = root.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join("ca").join("root.pem"));
    let pem = std::fs::read(&path).with_context(|| format!("cannot read the trusted root {}", path.display()))?;
    let (_, doc) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(doc.contents)
}

/// Verifies `file` against the root; prints what it proves. Every claim
/// of the record is checked against the proof it carries
/// (`connect_pki_ca::record::check`); the first that fails ends it.
pub fn verify(file: &Path, root: Option<&PathBuf>, data_dir: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let root = root_der(root.map(PathBuf::as_path), data_dir)?;
    let (signed, claims) = connect_pki_ca::record::check_file(&text, &root)?;
    println!(
        "signature OK: signed by {} under the trusted root, valid when the record was made ({})",
        signed.signer,
        rfc3339(claims.generated_at)
    );
    let p = &signed.payload;
    let revoked_at = p["certificate"]["revoked_at"].as_str().map(|t| format!(", revoked at {t}")).unwrap_or_default();
    let reason = match claims.reason {
        Some(r) if claims.status != connect_pki_domain::CertStatus::Valid => format!(" {}", r.as_str()),
        _ => String::new(),
    };
    println!(
        "record of {} (version {}): certificate {} ({}{reason}{revoked_at}), {} timeline events",
        rfc3339(claims.generated_at),
        claims.version,
        claims.serial,
        claims.status,
        p["timeline"].as_array().map_or(0, Vec::len),
    );
    let ocsp = &claims.ocsp;
    let said = match ocsp.reason {
        Some(r) => format!("{} ({})", ocsp.status, r.as_str()),
        None => ocsp.status.to_string(),
    };
    println!(
        "OCSP response in the record: signature OK, {said} (produced {}), agrees with the record",
        rfc3339(ocsp.produced_at)
    );
    match &claims.crl {
        Some(crl) => println!(
            "CRL {} number {} of {} in the record: signature OK, {}, agrees with the record",
            crl.issuing_ca,
            crl.number,
            rfc3339(crl.this_update),
            if crl.lists_certificate { "lists the certificate" } else { "does not list it" }
        ),
        None => println!("no CRL in the record (none was being served)"),
    }
    Ok(())
}
