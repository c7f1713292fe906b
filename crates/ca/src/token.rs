//! CA keys inside a PKCS#11 token (an HSM, or SoftHSM2 for tests), through
//! `cryptoki`.
//!
//! Keys are generated in the token as sensitive, non-extractable objects and
//! never leave it: the service holds only object handles. A key is found
//! again by its public key — the one its certificate in the data directory
//! carries — so the data directory needs no mapping from names to tokens'
//! object ids, and a renewed certificate finds its new key by itself.
//!
//! The token signs a digest with `CKM_ECDSA` and returns the raw `r || s`;
//! X.509 and TLS want the DER `ECDSA-Sig-Value`, encoded here with `der`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};

use crate::error::CaError;
use crate::keys::{CaKey, ExternalKey, KeyGenerator, KeyKind};

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// Sessions kept open: signing holds one for the call, so this many
/// signatures (OCSP answers, TLS handshakes, CRLs) run at once.
const SESSIONS: usize = 4;

/// An open, logged-in token.
#[derive(Clone)]
pub struct Token(Arc<Inner>);

struct Inner {
    label: String,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    // Keeps the module loaded as long as a session or key handle lives.
    _context: Pkcs11,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("label", &self.0.label).finish_non_exhaustive()
    }
}

fn token_err(step: &str, e: impl std::fmt::Display) -> CaError {
    CaError::Token(format!("{step}: {e}"))
}

impl Token {
    /// Loads the PKCS#11 module at `module`, finds the initialised token
    /// labelled `label` and logs in as its user with `pin`.
    pub fn open(module: &Path, label: &str, pin: &str) -> Result<Self, CaError> {
        let context = Pkcs11::new(module)
            .map_err(|e| token_err(&format!("cannot load the PKCS#11 module {}", module.display()), e))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(token_err("cannot initialise the PKCS#11 module", e)),
        }
        let slot = find_slot(&context, label)?;
        let mut sessions = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            sessions.push(context.open_rw_session(slot).map_err(|e| token_err("cannot open a session", e))?);
        }
        // The login holds for every session of this process on the token.
        match sessions[0].login(UserType::User, Some(&AuthPin::from(pin.to_string()))) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(P11Error::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(CaError::Token(format!("the PIN of token {label:?} is wrong")));
            }
            Err(e) => return Err(token_err(&format!("cannot log in to token {label:?}"), e)),
        }
        Ok(Self(Arc::new(Inner {
            label: label.to_string(),
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            _context: context,
        })))
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.0.label
    }

    /// The private key in the token whose public key is `spki_der` (a
    /// SubjectPublicKeyInfo, as in the key's certificate). `what` names the
    /// key in errors.
    pub fn find(&self, spki_der: &[u8], what: &str) -> Result<TokenKey, CaError> {
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| CaError::malformed(what.to_string(), e))?;
        let point = spki.subject_public_key.data.to_vec();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string())
            .ok_or_else(|| CaError::malformed(what.to_string(), "not an EC public key"))?;
        let kind = match curve.as_str() {
            OID_P256 => KeyKind::P256,
            OID_P384 => KeyKind::P384,
            other => {
                return Err(CaError::KeyNotAllowed(format!("{what}: curve {other} (a token holds P-256 or P-384)")));
            }
        };
        let wrapped = OctetString::new(point.clone()).and_then(|o| o.to_der()).map_err(|e| token_err("EC point", e))?;
        let handle = self.with_session(|s| {
            // CKA_EC_POINT is a DER OCTET STRING (PKCS#11 2.40 §2.3.3); some
            // modules store the bare point.
            for ec_point in [wrapped.clone(), point.clone()] {
                let public = s.find_objects(&[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::KeyType(KeyType::EC),
                    Attribute::EcPoint(ec_point),
                ])?;
                for p in public {
                    let id = match s.get_attributes(p, &[AttributeType::Id])?.pop() {
                        Some(Attribute::Id(id)) => id,
                        _ => continue,
                    };
                    let private = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Id(id)])?;
                    if let Some(h) = private.first() {
                        return Ok(Some(*h));
                    }
                }
            }
            Ok(None)
        })?;
        let handle = handle.ok_or_else(|| {
            CaError::Token(format!("the key of {what} is not in token {:?} (was the token replaced?)", self.0.label))
        })?;
        Ok(TokenKey::new(self.clone(), handle, point, kind, what))
    }

    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T, P11Error>) -> Result<T, CaError> {
        let n = self.0.sessions.len();
        let start = self.0.next.fetch_add(1, Ordering::Relaxed);
        // A free session if there is one; else wait for the next in turn.
        let guard = (0..n)
            .find_map(|i| self.0.sessions[(start + i) % n].try_lock().ok())
            .map_or_else(|| self.0.sessions[start % n].lock(), Ok)
            .map_err(|_| CaError::Token("a session was poisoned by a panic".into()))?;
        f(&guard).map_err(|e| token_err(&format!("token {:?}", self.0.label), e))
    }
}

impl KeyGenerator for Token {
    /// An EC key pair made inside the token: the private half sensitive,
    /// never extractable, usable only to sign.
    fn generate(&self, kind: KeyKind, label: &str) -> Result<CaKey, CaError> {
        let curve = match kind {
            KeyKind::P256 => OID_P256,
            KeyKind::P384 => OID_P384,
            KeyKind::Rsa2048 => return Err(CaError::KeyNotAllowed("the CA's keys in a token are EC keys".into())),
        };
        let params = ObjectIdentifier::new(curve)
            .map_err(|e| token_err("curve", e))?
            .to_der()
            .map_err(|e| token_err("curve", e))?;
        let mut id = vec![0u8; 16];
        getrandom::fill(&mut id).map_err(|e| token_err("random key id", e))?;
        let name = label.as_bytes().to_vec();
        let (public, private) = self.with_session(|s| {
            s.generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(false),
                    Attribute::Verify(true),
                    Attribute::Encrypt(false),
                    Attribute::Wrap(false),
                    Attribute::Derive(false),
                    Attribute::EcParams(params.clone()),
                    Attribute::Id(id.clone()),
                    Attribute::Label(name.clone()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                    Attribute::Decrypt(false),
                    Attribute::Unwrap(false),
                    Attribute::Derive(false),
                    Attribute::Id(id.clone()),
                    Attribute::Label(name.clone()),
                ],
            )
        })?;
        let point = self.with_session(|s| s.get_attributes(public, &[AttributeType::EcPoint]))?;
        let point = match point.into_iter().next() {
            Some(Attribute::EcPoint(p)) => unwrap_point(p),
            _ => return Err(CaError::Token("the token did not give the new key's public point".into())),
        };
        Ok(TokenKey::new(self.clone(), private, point, kind, label).into())
    }
}

/// CKA_EC_POINT as a bare uncompressed point, whether the module wrapped it
/// in an OCTET STRING or not.
fn unwrap_point(p: Vec<u8>) -> Vec<u8> {
    match OctetString::from_der(&p) {
        Ok(o) if o.as_bytes().first() == Some(&0x04) => o.as_bytes().to_vec(),
        _ => p,
    }
}

fn find_slot(context: &Pkcs11, label: &str) -> Result<Slot, CaError> {
    let slots = context.get_slots_with_initialized_token().map_err(|e| token_err("cannot list the slots", e))?;
    let mut seen = Vec::new();
    for slot in slots {
        let info = context.get_token_info(slot).map_err(|e| token_err("cannot read a token's label", e))?;
        let found = info.label().trim_end();
        if found == label {
            return Ok(slot);
        }
        seen.push(format!("{found:?}"));
    }
    Err(CaError::Token(format!(
        "no initialised token labelled {label:?} (found: {})",
        if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
    )))
}

/// A private key inside a token: a handle, and the public half it answers to.
#[derive(Clone)]
pub struct TokenKey {
    token: Token,
    handle: ObjectHandle,
    point: Vec<u8>,
    algorithm: &'static rcgen::SignatureAlgorithm,
    digest: &'static digest::Algorithm,
    /// Half the length of a raw signature: the size of the curve's field.
    half: usize,
    name: Arc<str>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({:?} in token {:?})", self.name, self.token.label())
    }
}

impl rcgen::PublicKeyData for TokenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

impl rcgen::SigningKey for TokenKey {
    /// ECDSA over `msg` with the curve's hash, as a DER ECDSA-Sig-Value.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_der(msg).map_err(|e| {
            tracing::error!(key = %self.name, error = %e, "the PKCS#11 token did not sign");
            rcgen::Error::RemoteKeyError
        })
    }
}

impl ExternalKey for TokenKey {
    fn clone_key(&self) -> Box<dyn ExternalKey> {
        Box::new(self.clone())
    }
}

impl From<TokenKey> for CaKey {
    fn from(key: TokenKey) -> Self {
        CaKey::external(Box::new(key))
    }
}

impl TokenKey {
    fn new(token: Token, handle: ObjectHandle, point: Vec<u8>, kind: KeyKind, name: &str) -> Self {
        let (algorithm, digest, half) = match kind {
            KeyKind::P384 => (&rcgen::PKCS_ECDSA_P384_SHA384, &digest::SHA384, 48),
            _ => (&rcgen::PKCS_ECDSA_P256_SHA256, &digest::SHA256, 32),
        };
        Self { token, handle, point, algorithm, digest, half, name: name.into() }
    }

    fn sign_der(&self, msg: &[u8]) -> Result<Vec<u8>, CaError> {
        let hash = digest::digest(self.digest, msg);
        let raw = self.token.with_session(|s| s.sign(&Mechanism::Ecdsa, self.handle, hash.as_ref()))?;
        if raw.len() != 2 * self.half {
            return Err(CaError::Token(format!("a signature of {} bytes, not {}", raw.len(), 2 * self.half)));
        }
        let (r, s) = raw.split_at(self.half);
        crate::ecdsa::der_from_raw(r, s)
    }
}
