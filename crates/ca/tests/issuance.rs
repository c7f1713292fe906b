//! Issuance checked with tools no one here wrote: certificates are verified by
//! `openssl verify` and read back with x509-parser; CSRs come from `openssl req`.

use std::path::Path;
use std::process::Command;

use connect_pki_ca::hierarchy::HierarchyNames;
use connect_pki_ca::issue::to_pem;
use connect_pki_ca::{CaError, DeviceSubject, Hierarchy, IssuingCa, KeyKind, Profile, parse_csr, pkcs12};
use connect_pki_domain::{DeviceId, FacilityId, UserId};
use time::OffsetDateTime;

struct Fixture {
    dir: tempfile::TempDir,
    ca: IssuingCa,
}

fn fixture() -> Fixture {
    let profile = Profile::new("http://pki.example.test:8080").expect("profile");
    let now = OffsetDateTime::now_utc();
    let names = ["localhost".into(), "127.0.0.1".into()];
    let h = Hierarchy::create(&profile, &HierarchyNames::default(), &names, &connect_pki_ca::InMemory, now)
        .expect("hierarchy");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("root.pem"), to_pem("CERTIFICATE", &h.root_der)).expect("write");
    std::fs::write(dir.path().join("issuing.pem"), to_pem("CERTIFICATE", &h.issuing_der)).expect("write");
    std::fs::write(dir.path().join("ocsp.pem"), to_pem("CERTIFICATE", &h.ocsp_der)).expect("write");
    std::fs::write(dir.path().join("tls.pem"), to_pem("CERTIFICATE", &h.tls_der)).expect("write");
    let ca = IssuingCa::new(h.issuing_der, h.issuing_key, h.root_der, profile).expect("issuing CA");
    Fixture { dir, ca }
}

fn subject() -> DeviceSubject {
    DeviceSubject { facility: FacilityId(3), user: UserId(14), device: DeviceId(15), login_id: "tanaka".into() }
}

fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn verify(dir: &Path, leaf: &str, purpose: &str) -> (bool, String) {
    openssl(dir, &["verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "-purpose", purpose, leaf])
}

fn make_csr(dir: &Path, keyalg: &[&str]) -> Vec<u8> {
    let mut args = vec!["req", "-new", "-newkey"];
    args.extend_from_slice(keyalg);
    args.extend_from_slice(&["-nodes", "-keyout", "dev.key", "-subj", "/CN=admin/O=Evil", "-out", "dev.csr"]);
    let (ok, text) = openssl(dir, &args);
    assert!(ok, "openssl req failed: {text}");
    std::fs::read(dir.join("dev.csr")).expect("csr")
}

#[test]
fn csr_from_openssl_req_yields_a_certificate_openssl_verifies() {
    let f = fixture();
    for keyalg in [&["ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..], &["rsa:2048"][..]] {
        let csr = parse_csr(&make_csr(f.dir.path(), keyalg)).expect("CSR accepted");
        let cert = f.ca.issue_device(&csr.spki_der, &subject(), OffsetDateTime::now_utc()).expect("issued");
        std::fs::write(f.dir.path().join("dev.pem"), cert.pem()).expect("write");
        let (ok, text) = verify(f.dir.path(), "dev.pem", "sslclient");
        assert!(ok && text.contains("dev.pem: OK"), "{keyalg:?}: {text}");
        // The key in the certificate is the one openssl generated.
        let (_, from_cert) = openssl(f.dir.path(), &["x509", "-in", "dev.pem", "-noout", "-pubkey"]);
        let (_, from_key) = openssl(f.dir.path(), &["pkey", "-in", "dev.key", "-pubout"]);
        assert_eq!(from_cert, from_key);
    }
}

#[test]
fn certificate_follows_the_profile_and_ignores_the_csr_subject() {
    let f = fixture();
    let csr = parse_csr(&make_csr(f.dir.path(), &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"])).expect("CSR");
    let now = OffsetDateTime::now_utc();
    let cert = f.ca.issue_device(&csr.spki_der, &subject(), now).expect("issued");
    let (_, x) = x509_parser::parse_x509_certificate(&cert.der).expect("parses");
    assert_eq!(x.raw_serial(), cert.serial.as_bytes());
    assert_eq!(x.raw_serial().len(), 16);
    assert_eq!(x.raw_serial()[0] & 0x80, 0, "serial is positive");
    let subject = x.subject().to_string();
    // The subject carries the user's id, not their login ID (erasable data).
    assert!(subject.contains("CN=14") && !subject.contains("tanaka") && !subject.contains("Evil"), "{subject}");
    let eku = x.extended_key_usage().expect("ok").expect("present").value;
    assert!(eku.client_auth && !eku.server_auth);
    let san = x.subject_alternative_name().expect("ok").expect("present").value;
    assert_eq!(format!("{:?}", san.general_names), "[URI(\"urn:connect-pki:facility:3:user:14:device:15\")]");
    std::fs::write(f.dir.path().join("dev.pem"), cert.pem()).expect("write");
    let (_, text) = openssl(f.dir.path(), &["x509", "-in", "dev.pem", "-noout", "-text"]);
    for want in [
        "URI:http://pki.example.test:8080/crl/issuing.crl",
        "OCSP - URI:http://pki.example.test:8080/ocsp",
        "CA Issuers - URI:http://pki.example.test:8080/ca/issuing.crt",
        "TLS Web Client Authentication",
        "Digital Signature",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let days = (cert.not_after - now).whole_days();
    assert_eq!(days, 365);
}

#[test]
fn csr_with_a_broken_signature_is_rejected() {
    let f = fixture();
    let _ = make_csr(f.dir.path(), &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let (ok, _) = openssl(f.dir.path(), &["req", "-in", "dev.csr", "-outform", "DER", "-out", "dev.der"]);
    assert!(ok);
    let mut der = std::fs::read(f.dir.path().join("dev.der")).expect("der");
    // Flip a bit in the last byte: inside the signature value.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = parse_csr(&der).expect_err("rejected");
    assert!(matches!(err, CaError::BadCsr(_)), "{err}");
    assert!(err.to_string().contains("signature does not verify"), "{err}");
}

#[test]
fn rsa_1024_and_other_curves_are_rejected_with_the_reason() {
    let f = fixture();
    let err = parse_csr(&make_csr(f.dir.path(), &["rsa:1024"])).expect_err("rejected");
    assert!(matches!(err, CaError::KeyNotAllowed(_)), "{err}");
    assert!(err.to_string().contains("1024 bits is too small"), "{err}");
    let err = parse_csr(&make_csr(f.dir.path(), &["ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"])).expect_err("no");
    assert!(err.to_string().contains("P-256 or P-384"), "{err}");
    let err = parse_csr(&make_csr(f.dir.path(), &["ed25519"])).expect_err("no");
    assert!(matches!(err, CaError::KeyNotAllowed(_)), "{err}");
}

#[test]
fn garbage_and_empty_csrs_get_a_clear_error() {
    for input in [&b""[..], b"hello", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"]
    {
        let err = parse_csr(input).expect_err("rejected");
        assert!(matches!(err, CaError::BadCsr(_)), "{err}");
    }
}

#[test]
fn hierarchy_verifies_and_service_certificates_carry_their_purpose() {
    let f = fixture();
    let (ok, text) = openssl(f.dir.path(), &["verify", "-CAfile", "root.pem", "issuing.pem"]);
    assert!(ok, "{text}");
    let (ok, text) = verify(f.dir.path(), "tls.pem", "sslserver");
    assert!(ok, "{text}");
    let (ok, text) = verify(f.dir.path(), "ocsp.pem", "ocsphelper");
    assert!(ok, "{text}");
    let (_, text) = openssl(f.dir.path(), &["x509", "-in", "ocsp.pem", "-noout", "-text"]);
    assert!(text.contains("OCSP Signing") && text.contains("OCSP No Check"), "{text}");
    let (_, text) = openssl(f.dir.path(), &["x509", "-in", "issuing.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    let (_, text) = openssl(f.dir.path(), &["x509", "-in", "root.pem", "-noout", "-text"]);
    assert!(text.contains("NIST CURVE: P-384") || text.contains("secp384r1"), "{text}");
}

#[test]
fn server_generated_key_comes_as_a_pkcs12_openssl_opens_without_legacy() {
    let f = fixture();
    let (cert, key) =
        f.ca.issue_device_with_new_key(KeyKind::P256, &subject(), OffsetDateTime::now_utc()).expect("issued");
    let p12 = pkcs12::build(&key, &cert.der, &[f.ca.cert_der()], "s3cret-pass", "tanaka").expect("p12");
    std::fs::write(f.dir.path().join("dev.p12"), p12).expect("write");
    let (ok, text) = openssl(
        f.dir.path(),
        &["pkcs12", "-in", "dev.p12", "-passin", "pass:s3cret-pass", "-nodes", "-out", "out.pem"],
    );
    assert!(ok, "{text}");
    let (ok, text) =
        openssl(f.dir.path(), &["pkcs12", "-in", "dev.p12", "-passin", "pass:s3cret-pass", "-info", "-noout"]);
    assert!(ok && text.contains("AES-256-CBC") && text.contains("sha256"), "{text}");
    let (ok, _) = openssl(f.dir.path(), &["pkcs12", "-in", "dev.p12", "-passin", "pass:wrong", "-nodes", "-noout"]);
    assert!(!ok, "wrong password accepted");
    let (ok, text) = verify(f.dir.path(), "out.pem", "sslclient");
    assert!(ok, "{text}");
}

#[test]
fn ocsp_request_is_the_one_openssl_sends_without_a_nonce() {
    let f = fixture();
    let (cert, _) =
        f.ca.issue_device_with_new_key(KeyKind::P256, &subject(), OffsetDateTime::now_utc()).expect("issued");
    std::fs::write(f.dir.path().join("dev.pem"), to_pem("CERTIFICATE", &cert.der)).expect("write");
    let ours = connect_pki_ca::ocsp::request(f.ca.cert_der(), cert.serial.as_bytes()).expect("request");
    let (ok, text) = openssl(
        f.dir.path(),
        &["ocsp", "-issuer", "issuing.pem", "-cert", "dev.pem", "-no_nonce", "-reqout", "openssl.der"],
    );
    assert!(ok, "{text}");
    let theirs = std::fs::read(f.dir.path().join("openssl.der")).expect("openssl wrote a request");
    assert_eq!(ours, theirs, "our request differs from openssl's");
}

/// RFC 5280 §4.2.1.2: end-entity certificates carry a Subject Key
/// Identifier (the SHA-1 of the key, as openssl computes it too); and no
/// device certificate outlives the CA that issued it.
#[test]
fn device_certificates_carry_a_key_identifier_and_end_with_their_ca_at_the_latest() {
    let f = fixture();
    let csr = parse_csr(&make_csr(f.dir.path(), &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"])).expect("CSR");
    let cert = f.ca.issue_device(&csr.spki_der, &subject(), OffsetDateTime::now_utc()).expect("issued");
    let (_, x) = x509_parser::parse_x509_certificate(&cert.der).expect("parses");
    let ski = x
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("a Subject Key Identifier");
    let basic = x.basic_constraints().expect("ok").expect("basicConstraints present");
    assert!(!basic.value.ca);
    std::fs::write(f.dir.path().join("ski.pem"), cert.pem()).expect("write");
    let (_, text) = openssl(f.dir.path(), &["x509", "-in", "ski.pem", "-noout", "-ext", "subjectKeyIdentifier"]);
    let hex: String = ski.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    assert!(text.contains(&hex), "openssl reads {text}, we wrote {hex}");
    let (ok, text) = verify(f.dir.path(), "ski.pem", "sslclient");
    assert!(ok, "{text}");

    // Issued a month before the CA ends: it ends with the CA, not a year later.
    let late = f.ca.not_after() - time::Duration::days(30);
    let cert = f.ca.issue_device(&csr.spki_der, &subject(), late).expect("issued");
    assert_eq!(cert.not_after, f.ca.not_after());
    let (_, x) = x509_parser::parse_x509_certificate(&cert.der).expect("parses");
    assert_eq!(x.validity().not_after.to_datetime(), f.ca.not_after());
}
