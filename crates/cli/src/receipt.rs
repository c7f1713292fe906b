//! `connect-pki receipt verify FILE`: checks a signed incident record.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use base64::Engine;

/// The JWS in `text`: the record file the service hands out (`{"record":
/// …, "signed": "<JWS>"}`), or the JWS alone.
fn jws_of(text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).context("the file is neither JSON nor a JWS")?;
        return v["signed"].as_str().map(str::to_string).ok_or_else(|| anyhow!("the JSON has no \"signed\" JWS"));
    }
    Ok(text.to_string())
}

fn root_der(root: Option<&Path>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = root.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join("ca").join("root.pem"));
    let pem = std::fs::read(&path).with_context(|| format!("cannot read the trusted root {}", path.display()))?;
    let (_, doc) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(doc.contents)
}

/// Verifies `file` against the root; prints what it proves.
pub fn verify(file: &Path, root: Option<&PathBuf>, data_dir: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let jws = jws_of(&text)?;
    let root = root_der(root.map(PathBuf::as_path), data_dir)?;
    let ok = connect_pki_ca::receipt::verify(&jws, &root)?;
    println!("signature OK: signed by {} under the trusted root", ok.signer);
    // The file's readable copy of the record must be the signed one.
    if text.trim().starts_with('{')
        && serde_json::from_str::<serde_json::Value>(&text)?.get("record").is_some_and(|r| *r != ok.payload)
    {
        bail!("the record shown beside the signature differs from the signed one");
    }
    let p = &ok.payload;
    let c = &p["certificate"];
    println!(
        "record of {}: certificate {} ({}{}), {} timeline events",
        p["generated_at"].as_str().unwrap_or("?"),
        c["serial"].as_str().unwrap_or("?"),
        c["status"].as_str().unwrap_or("?"),
        c["revoked_at"].as_str().map(|t| format!(", revoked at {t}")).unwrap_or_default(),
        p["timeline"].as_array().map_or(0, Vec::len),
    );
    let ocsp = p["proof"]["ocsp_response"].as_str().unwrap_or_default();
    let ocsp = base64::engine::general_purpose::STANDARD.decode(ocsp).context("the OCSP response in the record")?;
    let issuer = x5c_issuer(&jws)?;
    let said = connect_pki_ca::ocsp::read_response(&ocsp, &issuer)?;
    let serial: String = said.serial.iter().map(|b| format!("{b:02x}")).collect();
    if c["serial"].as_str().map(|s| s.trim_start_matches("00")) != Some(serial.trim_start_matches("00")) {
        bail!("the OCSP response in the record is about {serial}, not the record's certificate");
    }
    println!("OCSP response in the record: signature OK, {} (produced {})", said.status, said.produced_at);
    if let Some(crl) = p["proof"]["crl"].as_object() {
        println!(
            "CRL {} number {}: {}",
            crl["issuing_ca"].as_str().unwrap_or("?"),
            crl["crl_number"],
            if crl["lists_certificate"] == true { "lists the certificate" } else { "does not list it" }
        );
    }
    Ok(())
}

/// The issuing CA certificate in the JWS header (already checked by `verify`).
fn x5c_issuer(jws: &str) -> anyhow::Result<Vec<u8>> {
    let header = jws.split('.').next().unwrap_or_default();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header)?;
    let header: serde_json::Value = serde_json::from_slice(&header)?;
    let issuer = header["x5c"][1].as_str().ok_or_else(|| anyhow!("no issuing CA in x5c"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(issuer)?)
}
