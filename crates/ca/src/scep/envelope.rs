//! The pkcsPKIEnvelope (RFC 8894, 3.2.1): CMS EnvelopedData with one
//! RSA key-transport recipient. Opened with the RA key, sealed to the
//! requester's key; every cipher from aws-lc-rs, the one backend of the
//! service, whose RSA decryption is constant-time (unlike the `rsa` crate,
//! RUSTSEC-2023-0071).

use aws_lc_rs::cipher::{
    AES_128, AES_192, AES_256, DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
};
use der::asn1::OctetString;
use der::oid::ObjectIdentifier;
use der::{Any, Decode, Encode, Tag, TagNumber, Tagged};
use spki::AlgorithmIdentifierOwned;

use super::{lenient, oid};
use crate::CaError;

/// The content ciphers a request may use. GetCACaps offers AES only; the
/// DES ones are read because some clients never ask (the micromdm `scep`
/// client Debian ships always sends DES-CBC), and are never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
    Des,
}

impl Cipher {
    fn of(oid: &ObjectIdentifier) -> Option<Self> {
        Some(match *oid {
            oid::AES128_CBC => Cipher::Aes128,
            oid::AES192_CBC => Cipher::Aes192,
            oid::AES256_CBC => Cipher::Aes256,
            oid::DES_EDE3_CBC => Cipher::DesEde3,
            oid::DES_CBC => Cipher::Des,
            _ => return None,
        })
    }

    fn key_len(self) -> usize {
        match self {
            Cipher::Aes128 => 16,
            Cipher::Aes192 => 24,
            Cipher::Aes256 => 32,
            Cipher::DesEde3 => 24,
            Cipher::Des => 8,
        }
    }

    /// Whether GetCACaps may name it (it is not a DES).
    pub fn is_legacy(self) -> bool {
        matches!(self, Cipher::DesEde3 | Cipher::Des)
    }

    #[allow(deprecated)] // the DES constants: read, never written
    fn unbound(self, key: &[u8]) -> Result<UnboundCipherKey, aws_lc_rs::error::Unspecified> {
        let algorithm = match self {
            Cipher::Aes128 => &AES_128,
            Cipher::Aes192 => &AES_192,
            Cipher::Aes256 => &AES_256,
            Cipher::DesEde3 => &aws_lc_rs::cipher::DES_EDE3_FOR_LEGACY_USE_ONLY,
            Cipher::Des => &aws_lc_rs::cipher::DES_FOR_LEGACY_USE_ONLY,
        };
        UnboundCipherKey::new(algorithm, key)
    }

    fn context(self, iv: &[u8]) -> Option<DecryptionContext> {
        if self.is_legacy() {
            Some(DecryptionContext::Iv64(FixedLength::from(<[u8; 8]>::try_from(iv).ok()?)))
        } else {
            Some(DecryptionContext::Iv128(FixedLength::from(<[u8; 16]>::try_from(iv).ok()?)))
        }
    }
}

fn bad(why: impl std::fmt::Display) -> CaError {
    CaError::malformed("SCEP envelope", why)
}

/// Where an envelope is decrypted: the recipient certificate's identity
/// and its key, read once.
pub(crate) struct Opener<'a> {
    pub issuer_and_serial: &'a IssuerAndSerialNumber,
    pub key: &'a Pkcs1PrivateDecryptingKey,
}

/// The RSA decryption key of a PKCS#8 private key.
pub(crate) fn decrypting_key(pkcs8: &[u8]) -> Result<Pkcs1PrivateDecryptingKey, CaError> {
    let private = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|e| bad(format!("the key: {e}")))?;
    Pkcs1PrivateDecryptingKey::new(private).map_err(|_| bad("the key is not an RSA key"))
}

/// The content of `envelope` (a ContentInfo, DER) and the cipher it used.
pub(crate) fn open(envelope: &[u8], ra: &Opener<'_>) -> Result<(Vec<u8>, Cipher), CaError> {
    let info = ContentInfo::from_der(envelope).map_err(bad)?;
    if info.content_type != oid::ENVELOPED_DATA {
        return Err(bad("the pkiMessage content is not an EnvelopedData"));
    }
    let data: EnvelopedData = Any::from_der(&primitive_content(&info.content.to_der().map_err(bad)?)?)
        .and_then(|a| a.decode_as())
        .map_err(bad)?;
    let for_us = |k: &KeyTransRecipientInfo| match &k.rid {
        RecipientIdentifier::IssuerAndSerialNumber(i) => i == ra.issuer_and_serial,
        RecipientIdentifier::SubjectKeyIdentifier(_) => false,
    };
    let ktri = data
        .recip_infos
        .0
        .iter()
        .find_map(|r| match r {
            RecipientInfo::Ktri(k) if for_us(k) => Some(k),
            _ => None,
        })
        .ok_or_else(|| bad("not encrypted for this service's RA certificate: fetch GetCACert again"))?;
    let content = &data.encrypted_content;
    let cipher = Cipher::of(&content.content_enc_alg.oid)
        .ok_or_else(|| bad(format!("content cipher {} is not offered: use AES", content.content_enc_alg.oid)))?;
    let iv: OctetString =
        content.content_enc_alg.parameters.as_ref().ok_or_else(|| bad("no IV"))?.decode_as().map_err(bad)?;
    let context = cipher.context(iv.as_bytes()).ok_or_else(|| bad("an IV of the wrong length"))?;
    let key = content_key(ktri, ra.key, cipher.key_len())?;
    let mut body = content.encrypted_content.as_ref().ok_or_else(|| bad("no encrypted content"))?.as_bytes().to_vec();
    // One answer for every failure from here: which step failed (the RSA
    // padding, the key, the CBC padding) must not be told apart.
    let failed = || bad("the envelope could not be decrypted");
    let key = PaddedBlockDecryptingKey::cbc_pkcs7(cipher.unbound(&key).map_err(|_| failed())?).map_err(|_| failed())?;
    let plain = key.decrypt(&mut body, context).map_err(|_| failed())?.to_vec();
    Ok((plain, cipher))
}

/// The content-encryption key of `ktri`. A key transport that does not
/// decrypt to a key of the right length yields a random key instead of an
/// error (RFC 3218, 2.3.2), so the decryption fails later, the same way as
/// any other bad envelope, and no padding oracle is offered.
fn content_key(
    ktri: &KeyTransRecipientInfo,
    private: &Pkcs1PrivateDecryptingKey,
    len: usize,
) -> Result<Vec<u8>, CaError> {
    if ktri.key_enc_alg.oid != oid::RSA_ENCRYPTION {
        return Err(bad(format!("key transport {} is not rsaEncryption", ktri.key_enc_alg.oid)));
    }
    let mut random = vec![0u8; len];
    SystemRandom::new().fill(&mut random).map_err(|_| bad("no randomness"))?;
    let mut out = vec![0u8; private.key_size_bytes()];
    match private.decrypt(ktri.enc_key.as_bytes(), &mut out) {
        Ok(key) if key.len() == len => Ok(key.to_vec()),
        _ => Ok(random),
    }
}

/// `envelope` (an EnvelopedData, DER) with its encryptedContent as one
/// primitive [0]: BER senders (Go's pkcs7, OpenSSL) often send it
/// constructed, in OCTET STRING chunks, which the generic BER rewrite
/// cannot tell from an EXPLICIT tag; here the schema says it is IMPLICIT.
fn primitive_content(envelope: &[u8]) -> Result<Vec<u8>, CaError> {
    let mut fields: Vec<Any> = Vec::from_der(envelope).map_err(bad)?;
    let info = fields.iter_mut().find(|f| f.tag() == Tag::Sequence).ok_or_else(|| bad("no EncryptedContentInfo"))?;
    let mut parts: Vec<Any> = Vec::from_der(&info.to_der().map_err(bad)?).map_err(bad)?;
    let constructed_zero = Tag::ContextSpecific { constructed: true, number: TagNumber::N0 };
    if let Some(content) = parts.get_mut(2).filter(|p| p.tag() == constructed_zero) {
        let mut joined = Vec::new();
        let mut rest = content.value();
        while !rest.is_empty() {
            let (chunk, more) = split_first(rest)?;
            joined.extend_from_slice(super::ber::octets_of(chunk)?);
            rest = more;
        }
        *content = Any::new(Tag::ContextSpecific { constructed: false, number: TagNumber::N0 }, joined).map_err(bad)?;
        *info = Any::encode_from(&parts).map_err(bad)?;
    }
    fields.to_der().map_err(bad)
}

/// The first DER element of `bytes` and what follows.
fn split_first(bytes: &[u8]) -> Result<(&[u8], &[u8]), CaError> {
    let mut reader = der::SliceReader::new(bytes).map_err(bad)?;
    Any::decode(&mut reader).map_err(bad)?;
    let len = usize::try_from(der::Reader::position(&reader)).map_err(bad)?;
    Ok(bytes.split_at(len))
}

/// `content` sealed to `recipient` (a certificate, whose RSA key gets the
/// content key) with AES-256-CBC, as a ContentInfo.
pub(crate) fn seal(content: &[u8], recipient: &lenient::Certificate) -> Result<Vec<u8>, CaError> {
    let mut key = [0u8; 32];
    SystemRandom::new().fill(&mut key).map_err(|_| bad("no randomness"))?;
    let sealing =
        PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &key).map_err(|_| bad("AES key"))?)
            .map_err(|_| bad("AES key"))?;
    let mut body = content.to_vec();
    let context = sealing.encrypt(&mut body).map_err(|_| bad("AES encryption"))?;
    let iv: &[u8] = (&context).try_into().map_err(|_| bad("IV"))?;
    let spki = recipient.tbs_certificate.subject_public_key_info.to_der().map_err(bad)?;
    let public =
        PublicEncryptingKey::from_der(&spki).map_err(|e| bad(format!("the requester's key is not RSA: {e}")))?;
    let public = Pkcs1PublicEncryptingKey::new(public).map_err(|_| bad("the requester's key is not RSA"))?;
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let wrapped = public.encrypt(&key, &mut wrapped).map_err(|_| bad("RSA key transport"))?.to_vec();
    let ktri = lenient::KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: lenient::IssuerSerial::of(recipient),
        key_enc_alg: AlgorithmIdentifierOwned { oid: oid::RSA_ENCRYPTION, parameters: Some(Any::null()) },
        enc_key: OctetString::new(wrapped).map_err(bad)?,
    };
    let data = lenient::EnvelopedData {
        version: CmsVersion::V0,
        recip_infos: Any::new(Tag::Set, ktri.to_der().map_err(bad)?).map_err(bad)?,
        encrypted_content: EncryptedContentInfo {
            content_type: oid::DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: oid::AES256_CBC,
                parameters: Some(Any::encode_from(&OctetString::new(iv).map_err(bad)?).map_err(bad)?),
            },
            encrypted_content: Some(OctetString::new(body).map_err(bad)?),
        },
    };
    let info = ContentInfo { content_type: oid::ENVELOPED_DATA, content: Any::encode_from(&data).map_err(bad)? };
    info.to_der().map_err(bad)
}
