//! The signed incident record (`ra::incident`) checked as a whole: not only
//! who signed it, but that what it claims agrees with the proofs it
//! carries. The record says what the certificate's status was and which CRL
//! was being served; the OCSP response and the CRL inside, each signed by
//! the issuing CA's keys, must say the same. Without this, whoever holds the
//! OCSP signer's key could sign a record saying "valid" next to a response
//! saying "revoked", or cite a CRL that never existed, and the record would
//! still "verify".

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connect_pki_domain::{CertStatus, Reason};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::crl::PublishedCrl;
use crate::error::CaError;
use crate::ocsp::ReadResponse;
use crate::receipt::Verified;

/// What `type` says of every incident record.
pub const RECORD_TYPE: &str = "connect-pki incident record";

/// The version written: 2 carries the CRL itself (`proof.crl.der`), where
/// 1 carried only its number.
pub const RECORD_VERSION: u32 = 2;

fn bad(why: impl std::fmt::Display) -> CaError {
    CaError::malformed("incident record", why)
}

/// What a checked record proves, for printing.
#[derive(Debug, Clone)]
pub struct Claims {
    pub version: u32,
    pub generated_at: OffsetDateTime,
    /// Lowercase hex, as the record writes it.
    pub serial: String,
    pub status: CertStatus,
    pub reason: Option<Reason>,
    /// The OCSP response inside, read and checked.
    pub ocsp: ReadResponse,
    /// The CRL inside, read and checked, if the record carries one.
    pub crl: Option<CheckedCrl>,
}

/// The CRL inside a record, as read from its DER.
#[derive(Debug, Clone)]
pub struct CheckedCrl {
    /// The CA's name in the service (`issuing`, `issuing-2`).
    pub issuing_ca: String,
    pub number: u64,
    pub this_update: OffsetDateTime,
    pub lists_certificate: bool,
}

/// What the OCSP responder answers for a certificate in a given state
/// (`responder::ocsp::status`); the CRL lists it with the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Good,
    Revoked(Reason),
    Unknown,
}

impl Answer {
    fn expected(status: CertStatus, reason: Option<Reason>) -> Self {
        match status {
            CertStatus::Valid => Answer::Good,
            CertStatus::OnHold => Answer::Revoked(Reason::CertificateHold),
            CertStatus::Revoked | CertStatus::Superseded => Answer::Revoked(reason.unwrap_or(Reason::Unspecified)),
        }
    }

    fn of(r: &ReadResponse) -> Self {
        match (r.status, r.reason) {
            ("good", _) => Answer::Good,
            ("revoked", reason) => Answer::Revoked(reason.unwrap_or(Reason::Unspecified)),
            _ => Answer::Unknown,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Good => f.write_str("good"),
            Answer::Revoked(r) => write!(f, "revoked ({})", r.as_str()),
            Answer::Unknown => f.write_str("unknown"),
        }
    }
}

/// Checks the record file the service hands out (`{"record": …, "signed":
/// "<JWS>"}`, or the JWS alone) against the trusted root, as [`check`]
/// does, and that the readable copy beside the signature is the signed one.
pub fn check_file(text: &str, root_der: &[u8]) -> Result<(Verified, Claims), CaError> {
    let text = text.trim();
    let (jws, shown) = if text.starts_with('{') {
        let v: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("the file is neither JSON nor a JWS: {e}")))?;
        let jws = v["signed"].as_str().ok_or_else(|| bad("the JSON has no \"signed\" JWS"))?.to_string();
        (jws, v.get("record").cloned())
    } else {
        (text.to_string(), None)
    };
    let (signed, claims) = check(&jws, root_der)?;
    if shown.is_some_and(|r| r != signed.payload) {
        return Err(bad("the record shown beside the signature differs from the signed one"));
    }
    Ok((signed, claims))
}

/// Checks a signed incident record (the compact JWS) against the trusted
/// root: the signature and signer ([`crate::receipt::verify`]), the signer
/// and issuing CA valid when the record says it was made, and every claim
/// against its proofs ([`check_claims`]).
pub fn check(jws: &str, root_der: &[u8]) -> Result<(Verified, Claims), CaError> {
    let signed = crate::receipt::verify_signature(jws, root_der)?;
    let generated_at = time_of(&signed.payload["generated_at"], "generated_at")?;
    signed.check_valid_at(generated_at)?;
    let claims = check_claims(&signed.payload, &signed.issuer_der)?;
    Ok((signed, claims))
}

/// Checks what the record `payload` claims against the OCSP response and
/// the CRL it carries, both of which the issuing CA `issuer_der` must have
/// signed: the certificate's status and reason against the OCSP answer,
/// the CRL's number, thisUpdate and whether it lists the certificate (and
/// with which reason) against the record's words for them.
///
/// A version 1 record carries no CRL; if it names one, that claim cannot be
/// checked and the record is refused, saying so.
pub fn check_claims(payload: &Value, issuer_der: &[u8]) -> Result<Claims, CaError> {
    if payload["type"] != RECORD_TYPE {
        return Err(bad(format!("its type is {}, not \"{RECORD_TYPE}\"", payload["type"])));
    }
    let version = match payload["version"].as_u64().and_then(|v| u32::try_from(v).ok()) {
        Some(v @ 1..=RECORD_VERSION) => v,
        _ => {
            return Err(bad(format!(
                "version {} is not one this program reads (1 to {RECORD_VERSION})",
                payload["version"]
            )));
        }
    };
    let generated_at = time_of(&payload["generated_at"], "generated_at")?;
    let c = &payload["certificate"];
    let serial = text(&c["serial"], "certificate.serial")?;
    let serial_bytes = hex::decode(serial)
        .map(|b| trimmed(&b).to_vec())
        .map_err(|e| bad(format!("certificate.serial {serial:?} is not hex: {e}")))?;
    let status: CertStatus = serde_json::from_value(c["status"].clone())
        .map_err(|_| bad(format!("certificate.status {} is not a certificate status", c["status"])))?;
    let reason: Option<Reason> = serde_json::from_value(c["reason"].clone())
        .map_err(|_| bad(format!("certificate.reason {} is not a revocation reason", c["reason"])))?;
    let expected = Answer::expected(status, reason);
    let said_status = match reason {
        Some(r) if status != CertStatus::Valid => format!("{status} ({})", r.as_str()),
        _ => status.to_string(),
    };

    let proof = &payload["proof"];
    let ocsp = STANDARD
        .decode(text(&proof["ocsp_response"], "proof.ocsp_response")?)
        .map_err(|e| bad(format!("proof.ocsp_response is not base64: {e}")))?;
    let ocsp = crate::ocsp::read_response(&ocsp, issuer_der)?;
    if trimmed(&ocsp.serial) != serial_bytes.as_slice() {
        return Err(bad(format!(
            "its OCSP response is about certificate {}, not the record's {serial}",
            hex::encode(&ocsp.serial)
        )));
    }
    let answered = Answer::of(&ocsp);
    if answered != expected {
        return Err(bad(format!(
            "it says the certificate is {said_status}, but its OCSP response says {answered} (expected {expected})"
        )));
    }

    let crl = match &proof["crl"] {
        Value::Null => None,
        claim if version < 2 => {
            return Err(bad(format!(
                "a version {version} record names CRL number {} but does not carry that CRL, so its CRL claim \
                 cannot be checked (the signature and the OCSP response were checked and agree with it)",
                claim["crl_number"]
            )));
        }
        claim => Some(check_crl(claim, c, issuer_der, &serial_bytes, expected)?),
    };
    Ok(Claims { version, generated_at, serial: serial.to_string(), status, reason, ocsp, crl })
}

/// The `proof.crl` claim against the CRL it carries.
fn check_crl(
    claim: &Value,
    certificate: &Value,
    issuer_der: &[u8],
    serial: &[u8],
    expected: Answer,
) -> Result<CheckedCrl, CaError> {
    let der = STANDARD
        .decode(text(&claim["der"], "proof.crl.der")?)
        .map_err(|e| bad(format!("proof.crl.der is not base64: {e}")))?;
    // Its signature and issuer name: a CRL another CA signed, or none
    // signed, is refused here.
    let crl: PublishedCrl =
        crate::crl::read_published(&der, issuer_der).map_err(|e| bad(format!("the CRL it carries is refused: {e}")))?;
    let number = claim["crl_number"].as_u64();
    if number != Some(crl.number) {
        return Err(bad(format!(
            "it names CRL number {}, but the CRL it carries is number {}",
            claim["crl_number"], crl.number
        )));
    }
    let this_update = time_of(&claim["this_update"], "proof.crl.this_update")?;
    // The CRL holds whole seconds; the record may hold fractions.
    if this_update.unix_timestamp() != crl.this_update.unix_timestamp() {
        return Err(bad(format!(
            "it says the CRL was issued at {}, but the CRL it carries says {}",
            claim["this_update"],
            connect_pki_domain::clock::rfc3339(crl.this_update)
        )));
    }
    let issuing_ca = text(&claim["issuing_ca"], "proof.crl.issuing_ca")?;
    if certificate["issuing_ca"] != issuing_ca {
        return Err(bad(format!(
            "its CRL is that of CA {issuing_ca}, but the certificate is of CA {}",
            certificate["issuing_ca"]
        )));
    }
    let entry = crl.entries.iter().find(|e| trimmed(&e.serial) == serial);
    let claimed =
        claim["lists_certificate"].as_bool().ok_or_else(|| bad("proof.crl.lists_certificate is not true or false"))?;
    let says = |listed: bool| if listed { "lists" } else { "does not list" };
    if claimed != entry.is_some() {
        return Err(bad(format!(
            "it says CRL number {} {} the certificate, but that CRL {} it",
            crl.number,
            says(claimed),
            says(entry.is_some())
        )));
    }
    match (entry, expected) {
        (Some(_), Answer::Good) => {
            return Err(bad(format!(
                "CRL number {} lists the certificate, which the record says is valid",
                crl.number
            )));
        }
        (Some(e), Answer::Revoked(reason)) if e.reason != reason => {
            return Err(bad(format!(
                "CRL number {} lists the certificate as revoked ({}), but the record says {}",
                crl.number,
                e.reason.as_str(),
                reason.as_str()
            )));
        }
        _ => {}
    }
    Ok(CheckedCrl {
        issuing_ca: issuing_ca.to_string(),
        number: crl.number,
        this_update: crl.this_update,
        lists_certificate: entry.is_some(),
    })
}

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, CaError> {
    v.as_str().ok_or_else(|| bad(format!("{field} is missing or not a string")))
}

fn time_of(v: &Value, field: &str) -> Result<OffsetDateTime, CaError> {
    let t = text(v, field)?;
    OffsetDateTime::parse(t, &Rfc3339).map_err(|e| bad(format!("{field} {t:?} is not an RFC 3339 time: {e}")))
}

/// Whether two serials (DER INTEGER content) are the same number.
pub fn same_serial(a: &[u8], b: &[u8]) -> bool {
    trimmed(a) == trimmed(b)
}

/// A serial's DER INTEGER content without the leading zero bytes that only
/// keep it positive.
fn trimmed(serial: &[u8]) -> &[u8] {
    let start = serial.iter().position(|b| *b != 0).unwrap_or(serial.len());
    &serial[start..]
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::Duration;

    use super::*;
    use crate::crl::CrlEntry;
    use crate::hierarchy::{Hierarchy, HierarchyNames};
    use crate::ocsp::{OcspSigner, Status};
    use crate::{InMemory, IssuingCa, Profile};

    const SERIAL: &str = "5f46aa01";

    /// A hierarchy, its issuing CA and OCSP signer, from which records are
    /// made the way `ra::incident` makes them.
    struct Pki {
        h: Hierarchy,
        ca: IssuingCa,
        ocsp: OcspSigner,
        now: OffsetDateTime,
    }

    fn pki() -> Pki {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("whole second");
        let profile = Profile::new("http://pki.example.test").expect("profile");
        let h = Hierarchy::create(&profile, &HierarchyNames::default(), &[], &InMemory, now).expect("hierarchy");
        let key = h.issuing_key.clone_key().expect("key");
        let ca = IssuingCa::new(h.issuing_der.clone(), key, h.root_der.clone(), profile).expect("issuing CA");
        let ocsp = OcspSigner::new(&h.ocsp_der, h.ocsp_key.clone_key().expect("key"), &h.issuing_der).expect("signer");
        Pki { h, ca, ocsp, now }
    }

    fn serial() -> Vec<u8> {
        hex::decode(SERIAL).expect("hex")
    }

    impl Pki {
        fn ocsp_says(&self, status: Status) -> String {
            let request = crate::ocsp::request(&self.h.issuing_der, &serial()).expect("request");
            let item = self.ocsp.parse(&request).expect("parsed").items.remove(0);
            let der = self.ocsp.respond(&[(item.id, status)], None, self.now, self.now + Duration::hours(1));
            STANDARD.encode(der.expect("response"))
        }

        fn revoked(&self, reason: Reason) -> Status {
            Status::Revoked { at: self.now - Duration::minutes(5), reason }
        }

        /// The `proof.crl` of a CRL numbered `number` signed by `ca`,
        /// listing the certificate with `reason` if given.
        fn crl(&self, ca: &IssuingCa, number: u64, listed: Option<Reason>) -> Value {
            let entries = listed.map(|reason| CrlEntry { serial: serial(), revoked_at: self.now, reason });
            let der = ca.sign_crl(entries, number, self.now, self.now + Duration::days(1)).expect("CRL");
            json!({
                "crl_number": number,
                "der": STANDARD.encode(der),
                "issuing_ca": "issuing",
                "lists_certificate": listed.is_some(),
                "this_update": connect_pki_domain::clock::rfc3339(self.now),
            })
        }

        fn record(&self, status: &str, reason: Option<&str>, ocsp: String, crl: Value) -> Value {
            json!({
                "certificate": {
                    "device_id": 1, "facility_id": 1, "facility_name": "施設",
                    "issuing_ca": "issuing",
                    "not_after": "2027-01-01T00:00:00Z", "not_before": "2026-01-01T00:00:00Z",
                    "reason": reason, "revoked_at": null,
                    "serial": SERIAL, "status": status, "user_id": 1,
                },
                "generated_at": connect_pki_domain::clock::rfc3339(self.now),
                "proof": {"crl": crl, "ocsp_response": ocsp},
                "timeline": [],
                "type": RECORD_TYPE,
                "version": RECORD_VERSION,
            })
        }

        /// The record signed by the OCSP signer, checked as `receipt verify` does.
        fn check(&self, record: &Value) -> Result<Claims, CaError> {
            let payload = serde_json::to_vec(record).expect("json");
            let jws = self.ocsp.receipt(&self.h.issuing_der, &payload).expect("signed");
            check(&jws, &self.h.root_der).map(|(_, claims)| claims)
        }
    }

    fn refused(result: Result<Claims, CaError>, words: &str) {
        match result {
            Ok(c) => panic!("accepted, expected refusal saying {words:?}: {c:?}"),
            Err(e) => assert!(e.to_string().contains(words), "{e} does not say {words:?}"),
        }
    }

    #[test]
    fn a_consistent_record_is_accepted() {
        let p = pki();
        let revoked = p.record(
            "revoked",
            Some("keyCompromise"),
            p.ocsp_says(p.revoked(Reason::KeyCompromise)),
            p.crl(&p.ca, 7, Some(Reason::KeyCompromise)),
        );
        let claims = p.check(&revoked).expect("a consistent revoked record");
        let crl = claims.crl.expect("its CRL");
        assert_eq!((crl.number, crl.lists_certificate), (7, true));
        assert_eq!(claims.ocsp.status, "revoked");

        let valid = p.record("valid", None, p.ocsp_says(Status::Good), p.crl(&p.ca, 7, None));
        p.check(&valid).expect("a consistent valid record");
        let held = p.record(
            "on_hold",
            Some("certificateHold"),
            p.ocsp_says(p.revoked(Reason::CertificateHold)),
            p.crl(&p.ca, 3, Some(Reason::CertificateHold)),
        );
        p.check(&held).expect("a consistent held record");
        // No reason: the responder and the CRL leave it out, read back as unspecified.
        let plain = p.record(
            "revoked",
            None,
            p.ocsp_says(p.revoked(Reason::Unspecified)),
            p.crl(&p.ca, 4, Some(Reason::Unspecified)),
        );
        p.check(&plain).expect("a revoked record without a reason");
        // A certificate revoked after the CRL was made: not listed yet, which the record says.
        let late = p.record(
            "revoked",
            Some("keyCompromise"),
            p.ocsp_says(p.revoked(Reason::KeyCompromise)),
            p.crl(&p.ca, 4, None),
        );
        p.check(&late).expect("a revoked record whose CRL does not list it yet");
        let no_crl = p.record("valid", None, p.ocsp_says(Status::Good), Value::Null);
        assert!(p.check(&no_crl).expect("a record without a CRL").crl.is_none());
    }

    #[test]
    fn a_status_its_ocsp_response_contradicts_is_refused() {
        let p = pki();
        let crl = p.crl(&p.ca, 7, None);
        let says = "but its OCSP response says";
        let valid_but_revoked = p.record("valid", None, p.ocsp_says(p.revoked(Reason::KeyCompromise)), crl.clone());
        refused(p.check(&valid_but_revoked), says);
        let revoked_but_good = p.record("revoked", Some("keyCompromise"), p.ocsp_says(Status::Good), crl.clone());
        refused(p.check(&revoked_but_good), says);
        let other_reason =
            p.record("revoked", Some("keyCompromise"), p.ocsp_says(p.revoked(Reason::AffiliationChanged)), crl.clone());
        refused(p.check(&other_reason), "revoked (affiliationChanged)");
        let held_but_revoked =
            p.record("on_hold", Some("certificateHold"), p.ocsp_says(p.revoked(Reason::KeyCompromise)), crl.clone());
        refused(p.check(&held_but_revoked), says);
        let unknown = p.record("valid", None, p.ocsp_says(Status::Unknown), crl);
        refused(p.check(&unknown), "says unknown");
    }

    #[test]
    fn a_crl_claim_its_crl_contradicts_is_refused() {
        let p = pki();
        let revoked =
            |crl: Value| p.record("revoked", Some("keyCompromise"), p.ocsp_says(p.revoked(Reason::KeyCompromise)), crl);
        let listing = p.crl(&p.ca, 7, Some(Reason::KeyCompromise));

        let mut number = listing.clone();
        number["crl_number"] = json!(8);
        refused(p.check(&revoked(number)), "names CRL number 8, but the CRL it carries is number 7");

        let mut not_listing = p.crl(&p.ca, 7, None);
        not_listing["lists_certificate"] = json!(true);
        refused(p.check(&revoked(not_listing)), "that CRL does not list it");

        let mut listing_denied = listing.clone();
        listing_denied["lists_certificate"] = json!(false);
        refused(p.check(&revoked(listing_denied)), "that CRL lists it");

        let mut this_update = listing.clone();
        this_update["this_update"] = json!(connect_pki_domain::clock::rfc3339(p.now - Duration::hours(1)));
        refused(p.check(&revoked(this_update)), "but the CRL it carries says");

        // Another CA of the same name signed it.
        let other = pki();
        refused(p.check(&revoked(p.crl(&other.ca, 7, Some(Reason::KeyCompromise)))), "its signature does not verify");

        let mut no_crl = listing.clone();
        no_crl.as_object_mut().expect("object").remove("der");
        refused(p.check(&revoked(no_crl)), "proof.crl.der is missing");

        let mut garbage = listing.clone();
        garbage["der"] = json!(STANDARD.encode(b"not a CRL"));
        refused(p.check(&revoked(garbage)), "the CRL it carries is refused");

        let other_reason = revoked(p.crl(&p.ca, 7, Some(Reason::Superseded)));
        refused(p.check(&other_reason), "lists the certificate as revoked (superseded)");

        let valid_but_listed =
            p.record("valid", None, p.ocsp_says(Status::Good), p.crl(&p.ca, 7, Some(Reason::KeyCompromise)));
        refused(p.check(&valid_but_listed), "which the record says is valid");
    }

    #[test]
    fn a_version_1_record_is_refused_only_for_the_crl_it_does_not_carry() {
        let p = pki();
        let mut old = p.record(
            "valid",
            None,
            p.ocsp_says(Status::Good),
            json!({
                "crl_number": 7, "issuing_ca": "issuing", "lists_certificate": false,
                "this_update": connect_pki_domain::clock::rfc3339(p.now),
            }),
        );
        old["version"] = json!(1);
        refused(p.check(&old), "does not carry that CRL, so its CRL claim cannot be checked");
        old["proof"]["crl"] = Value::Null;
        assert_eq!(p.check(&old).expect("a version 1 record without a CRL claim").version, 1);
        old["version"] = json!(3);
        refused(p.check(&old), "version 3 is not one this program reads");
    }

    #[test]
    fn a_record_signed_when_its_signer_was_not_valid_is_refused() {
        let p = pki();
        let mut record = p.record("valid", None, p.ocsp_says(Status::Good), Value::Null);
        record["generated_at"] = json!(connect_pki_domain::clock::rfc3339(p.now - Duration::days(2)));
        refused(p.check(&record), "the signer's certificate was not yet valid");
        record["generated_at"] = json!(connect_pki_domain::clock::rfc3339(p.now + Duration::days(400)));
        refused(p.check(&record), "the signer's certificate was expired");
        record["generated_at"] = json!("yesterday");
        refused(p.check(&record), "generated_at \"yesterday\" is not an RFC 3339 time");
    }
}
