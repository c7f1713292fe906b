//! Every way a stranger's bytes enter the service before anyone is
//! authenticated, or before a body is validated, as a function that takes
//! arbitrary bytes and must not panic. `fuzz/` runs them under libFuzzer
//! (`cargo +nightly fuzz run <target>`); `tests/smoke.rs` runs them over the
//! seed corpus and mutations of it on every test run.

use std::sync::OnceLock;

use connect_pki_ca::ocsp::OcspSigner;
use connect_pki_ca::{Hierarchy, Profile};
use connect_pki_server::http::api::views;

/// A fuzz target: takes any bytes, must not panic.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/` and the smoke test know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("ocsp_request", ocsp_request),
    ("ocsp_get", ocsp_get),
    ("csr", csr),
    ("enrollment_code", enrollment_code),
    ("serial", serial),
    ("json_bodies", json_bodies),
    ("est_bodies", est_bodies),
    ("scep_message", scep_message),
];

/// An OCSP signer for a CA made once per process (key generation is slow).
fn signer() -> &'static OcspSigner {
    static SIGNER: OnceLock<OcspSigner> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let profile = Profile::new("http://fuzz.example").expect("profile");
        let h = Hierarchy::create(
            &profile,
            &Default::default(),
            &["localhost".into()],
            &connect_pki_ca::InMemory,
            time::OffsetDateTime::now_utc(),
        )
        .expect("hierarchy");
        OcspSigner::new(&h.ocsp_der, h.ocsp_key, &h.issuing_der).expect("signer")
    })
}

/// `POST /ocsp`: a DER OCSP request, parsed and (when it parses) answered.
pub fn ocsp_request(data: &[u8]) {
    if let Ok(req) = signer().parse(data) {
        let items: Vec<_> = req.items.iter().map(|i| (i.id.clone(), connect_pki_ca::ocsp::Status::Unknown)).collect();
        let now = time::OffsetDateTime::now_utc();
        let _ = signer().respond(&items, req.nonce.as_ref(), now, now + time::Duration::minutes(1));
    }
}

/// `GET /ocsp/{base64}`: the path decoded as the responder does, then parsed.
pub fn ocsp_get(data: &[u8]) {
    if let Ok(path) = std::str::from_utf8(data)
        && let Some(der) = connect_pki_ca::ocsp::decode_get_path(path)
    {
        let _ = signer().parse(&der);
    }
}

/// A CSR as enrollment and renewal receive it (PEM or DER).
pub fn csr(data: &[u8]) {
    if let Ok(checked) = connect_pki_ca::parse_csr(data) {
        let _ = checked.check_claims("fuzz");
    }
}

/// An enrollment code as a person types it.
pub fn enrollment_code(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = connect_pki_domain::enrollment::CodeInput::parse(s);
    }
}

/// A serial in a path (`/api/v1/certificates/{serial}`).
pub fn serial(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(serial) = s.parse::<connect_pki_domain::Serial>()
    {
        // What is parsed must print back to a form that parses the same.
        let again: connect_pki_domain::Serial = serial.to_hex().parse().expect("a printed serial parses");
        assert_eq!(again, serial, "serial {s:?} does not survive printing");
    }
}

/// Every JSON request body, decoded and, where the API validates it, validated.
pub fn json_bodies(data: &[u8]) {
    if let Ok(body) = serde_json::from_slice::<views::ApplicationBody>(data) {
        let _ = connect_pki_domain::application::ApplicationForm::from(body).validate("2026-04-01");
    }
    let _ = serde_json::from_slice::<views::UserBody>(data);
    let _ = serde_json::from_slice::<views::EnrollBody>(data);
    let _ = serde_json::from_slice::<views::RenewBody>(data);
    let _ = serde_json::from_slice::<views::RevokeBody>(data);
    let _ = serde_json::from_slice::<views::RetireBody>(data);
    let _ = serde_json::from_slice::<views::EmergencyBody>(data);
    let _ = serde_json::from_slice::<views::EscalationBody>(data);
    let _ = serde_json::from_slice::<views::ClaimBody>(data);
    let _ = serde_json::from_slice::<views::ResolveBody>(data);
    let _ = serde_json::from_slice::<views::RejectBody>(data);
}

/// An EST request as `simpleenroll` and `simplereenroll` read it: the body
/// (base64 PKCS#10, line breaks allowed) and the HTTP Basic credentials.
pub fn est_bodies(data: &[u8]) {
    use connect_pki_server::http::est;
    if let Ok(pem) = est::request(data) {
        let _ = connect_pki_ca::parse_csr(pem.as_bytes());
    }
    if let Ok(value) = std::str::from_utf8(data) {
        let _ = est::credentials(value);
    }
}

/// An RA made once per process (an RSA key: slow to make).
fn scep_ra() -> &'static connect_pki_ca::scep::ScepRa {
    static RA: OnceLock<connect_pki_ca::scep::ScepRa> = OnceLock::new();
    RA.get_or_init(|| {
        let profile = Profile::new("http://fuzz.example").expect("profile");
        let now = time::OffsetDateTime::now_utc();
        let h = Hierarchy::create(&profile, &Default::default(), &[], &connect_pki_ca::InMemory, now).expect("CA");
        let ca = connect_pki_ca::IssuingCa::new(h.issuing_der, h.issuing_key, h.root_der, profile).expect("CA");
        let (der, key) = connect_pki_ca::hierarchy::scep_ra(&ca, now, time::Duration::days(30)).expect("RA");
        connect_pki_ca::scep::ScepRa::new(&der, key).expect("RA")
    })
}

/// `POST /scep?operation=PKIOperation`: a pkiMessage (BER or DER) as the
/// RA reads it, and the failure answer to whatever could be answered.
pub fn scep_message(data: &[u8]) {
    let _ = connect_pki_ca::scep::ber::to_der(data);
    match scep_ra().read(data) {
        Ok(request) => {
            let _ = request.challenge();
        }
        Err(rejected) => {
            if let Some(to) = rejected.reply_to {
                let _ = scep_ra().answer(&to, &connect_pki_ca::scep::Outcome::Failed(rejected.fail));
            }
        }
    }
}
