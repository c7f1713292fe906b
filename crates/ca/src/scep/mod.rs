//! SCEP (RFC 8894): the messages of the protocol every device-management
//! system speaks, read and written here; who may enroll is the
//! registration authority's business, not this module's.
//!
//! The RA certificate (an RSA key of its own, never the CA key) is the
//! recipient of every request's envelope and the signer of every answer.
//! Input is BER from real clients and is rewritten to DER ([`ber`]) before
//! the `cms` crate reads it.

pub mod ber;
pub mod client;
mod envelope;
pub mod lenient;
mod message;
mod oid;
mod reply;

use cms::cert::IssuerAndSerialNumber;

pub use envelope::Cipher;

use crate::CaError;
use crate::keys::CaKey;

/// What GetCACaps answers: POST, the SHA-2 digests and AES, RFC 8894 and
/// renewal; no DES, no MD5, no SHA-1. SHA-384 is named too (it is
/// accepted like the others): strongSwan 5.9's `pki --scep` reads each
/// capability one place off, and only sees SHA-256 and AES when SHA-384 is
/// there.
pub const CAPABILITIES: &str = "POSTPKIOperation\nSHA-256\nSHA-384\nSHA-512\nAES\nSCEPStandard\nRenewal\n";

/// The RA: its certificate and key, as the service holds them.
pub struct ScepRa {
    cert_der: Vec<u8>,
    cert: x509_cert::Certificate,
    /// Signs the answers.
    key: CaKey,
    /// The same key, read once for aws-lc-rs's RSA decryption.
    decrypting: aws_lc_rs::rsa::Pkcs1PrivateDecryptingKey,
    issuer_and_serial: IssuerAndSerialNumber,
}

impl std::fmt::Debug for ScepRa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScepRa").field("serial", &self.issuer_and_serial.serial_number).finish_non_exhaustive()
    }
}

impl ScepRa {
    /// The RA of `cert_der` with its `key`: an RSA key (or requests could
    /// not be encrypted to it) held in memory.
    pub fn new(cert_der: &[u8], key: CaKey) -> Result<Self, CaError> {
        let Some(memory) = key.in_memory() else {
            return Err(CaError::KeyNotAllowed("the SCEP RA key must be a file key, not a token key".into()));
        };
        let decrypting = envelope::decrypting_key(memory.pkcs8_der())?;
        let cert = reply::certificate(cert_der)?;
        if key.public_key_der()
            != der::Encode::to_der(&cert.tbs_certificate.subject_public_key_info).unwrap_or_default()
        {
            return Err(CaError::malformed("SCEP RA", "the key is not the certificate's"));
        }
        let issuer_and_serial = reply::issuer_and_serial(&cert);
        Ok(Self { cert_der: cert_der.to_vec(), cert, key, decrypting, issuer_and_serial })
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Reads, checks and decrypts a PKIOperation body.
    pub fn read(&self, body: &[u8]) -> Result<Request, Rejected> {
        message::read(self, body)
    }

    /// The CertRep for `to`, DER.
    pub fn answer(&self, to: &ReplyTo, outcome: &Outcome<'_>) -> Result<Vec<u8>, CaError> {
        reply::cert_rep(self, to, outcome)
    }
}

/// The SCEP request types this service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    PkcsReq,
    RenewalReq,
    GetCertInitial,
}

impl MessageType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "19" => Some(Self::PkcsReq),
            "17" => Some(Self::RenewalReq),
            "20" => Some(Self::GetCertInitial),
            _ => None,
        }
    }
}

/// Why a request fails, as SCEP tells the client (RFC 8894, 3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    BadAlg = 0,
    BadMessageCheck = 1,
    BadRequest = 2,
    BadTime = 3,
    BadCertId = 4,
}

/// What an answer needs from its request.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    /// The certificate that signed the request: self-signed for a first
    /// enrollment, the current one for a renewal. The answer is sealed to it.
    pub signer: lenient::Certificate,
    pub kind: Option<MessageType>,
}

impl ReplyTo {
    /// The signer certificate, DER.
    pub fn signer_der(&self) -> Vec<u8> {
        der::Encode::to_der(&self.signer).unwrap_or_default()
    }

    /// The signer certificate's serial number (the INTEGER's content bytes).
    pub fn signer_serial(&self) -> &[u8] {
        self.signer.tbs_certificate.serial_number.as_bytes()
    }
}

/// A request that was read, checked and decrypted.
#[derive(Debug)]
pub struct Request {
    pub kind: MessageType,
    pub reply_to: ReplyTo,
    /// The envelope's content: a PKCS#10 request (DER) for PKCSReq and
    /// RenewalReq, an IssuerAndSubject for GetCertInitial.
    pub content: Vec<u8>,
    pub cipher: Cipher,
}

impl Request {
    /// The challengePassword of the request's PKCS#10, if any.
    pub fn challenge(&self) -> Option<String> {
        message::challenge_of(&self.content)
    }
}

/// A request refused before it was understood: with whom to answer when
/// enough was read for a CertRep, else only an HTTP error.
#[derive(Debug)]
pub struct Rejected {
    pub reply_to: Option<Box<ReplyTo>>,
    pub fail: FailInfo,
    pub why: CaError,
}

/// How a request ends.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The certificate issued (DER).
    Issued(&'a [u8]),
    Failed(FailInfo),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hierarchy, HierarchyNames, InMemory, IssuingCa, Profile};

    /// Real requests from the micromdm client (Debian's `scep`), one of them
    /// rewritten as BER (indefinite lengths, chunked OCTET STRINGs), and one
    /// from certmonger.
    fn seed(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/scep_message/");
        std::fs::read(format!("{dir}{name}")).expect("seed")
    }

    fn ra() -> ScepRa {
        let profile = Profile::new("http://pki.example.test").expect("profile");
        let now = time::OffsetDateTime::now_utc();
        let h = Hierarchy::create(&profile, &HierarchyNames::default(), &[], &InMemory, now).expect("hierarchy");
        let ca = IssuingCa::new(h.issuing_der, h.issuing_key, h.root_der, profile).expect("CA");
        let (der, key) = crate::hierarchy::scep_ra(&ca, now, time::Duration::days(30)).expect("RA");
        ScepRa::new(&der, key).expect("RA")
    }

    #[test]
    fn a_real_clients_message_as_ber_becomes_its_der_byte_for_byte() {
        let (der, ber) = (seed("micromdm-pkcsreq.der"), seed("micromdm-pkcsreq.ber"));
        assert_ne!(der, ber);
        assert_eq!(ber::to_der(&ber).expect("BER"), der);
        assert_eq!(ber::to_der(&der).expect("DER"), der);
    }

    #[test]
    fn a_real_clients_signature_verifies_in_ber_and_der_and_only_the_envelope_is_not_ours() {
        let ra = ra();
        // certmonger's signer certificate has a 32-byte serial number.
        for name in
            ["micromdm-pkcsreq.der", "micromdm-pkcsreq.ber", "micromdm-renewalreq.der", "certmonger-pkcsreq.der"]
        {
            let rejected = ra.read(&seed(name)).expect_err("encrypted to another RA");
            // Read as far as the envelope: answerable, signature checked.
            let to = rejected.reply_to.unwrap_or_else(|| panic!("{name}: unanswerable: {}", rejected.why));
            assert_eq!(rejected.fail, FailInfo::BadMessageCheck, "{name}");
            assert!(
                rejected.why.to_string().contains("not encrypted for this service's RA"),
                "{name}: {}",
                rejected.why
            );
            assert!(!to.transaction_id.is_empty() && !to.sender_nonce.is_empty());
            let answer = ra.answer(&to, &Outcome::Failed(rejected.fail)).expect("CertRep");
            assert!(answer.len() > 100);
        }
        // One flipped byte in the signed content (the envelope starts at
        // byte 56): the digest the signature covers no longer matches.
        let mut tampered = seed("micromdm-pkcsreq.der");
        tampered[100] ^= 0x01;
        let r = ra.read(&tampered).expect_err("tampered");
        assert_eq!(r.fail, FailInfo::BadMessageCheck);
        assert!(r.why.to_string().contains("messageDigest does not match"), "{}", r.why);
    }

    #[test]
    fn a_request_made_here_is_read_back_with_its_challenge_and_csr() {
        let (ra, other) = (ra(), ra());
        let requester = client::Requester::new(crate::PrivateKey::generate(crate::KeyKind::Rsa2048).expect("key"))
            .expect("requester");
        let der = requester.pkcs_req(ra.cert_der(), Some("hanako"), "ABCD-EFGH", "tx-1").expect("PKCSReq");
        let request = ra.read(&der).expect("read");
        assert_eq!(request.kind, MessageType::PkcsReq);
        assert_eq!(request.reply_to.transaction_id, "tx-1");
        assert_eq!(request.challenge().as_deref(), Some("ABCD-EFGH"));
        assert_eq!(request.cipher, Cipher::Aes256);
        // The answer opens with the requester's key, and a failure carries none.
        let issued = ra.cert_der().to_vec();
        let answer = ra.answer(&request.reply_to, &Outcome::Issued(&issued)).expect("CertRep");
        assert_eq!(requester.certificate_of(&answer).expect("opens"), Some(issued));
        let failed = ra.answer(&request.reply_to, &Outcome::Failed(FailInfo::BadRequest)).expect("CertRep");
        assert_eq!(requester.certificate_of(&failed).expect("reads"), None);
        let csr = crate::parse_csr(crate::issue::to_pem("CERTIFICATE REQUEST", &request.content).as_bytes());
        assert!(csr.is_ok(), "{csr:?}");
        // Encrypted to another RA: the envelope does not open.
        let refused = other.read(&der).expect_err("not ours");
        assert_eq!(refused.fail, FailInfo::BadMessageCheck);
    }

    #[test]
    fn capabilities_name_no_des_md5_or_sha1() {
        for line in CAPABILITIES.lines() {
            assert!(!["DES", "DES3", "MD5", "SHA-1"].contains(&line), "{line}");
        }
    }
}
