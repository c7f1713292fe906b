//! ECDSA signatures in their two encodings: the DER `ECDSA-Sig-Value`
//! (RFC 3279) that X.509 and TLS carry, and the raw `r || s` that JWS
//! (RFC 7518 §3.4) and PKCS#11 tokens use. `der`'s derive does the encoding.

use der::asn1::UintRef;

use crate::error::CaError;

/// `ECDSA-Sig-Value`: `SEQUENCE { r INTEGER, s INTEGER }`.
#[derive(der::Sequence)]
pub(crate) struct EcdsaSigValue<'a> {
    pub(crate) r: UintRef<'a>,
    pub(crate) s: UintRef<'a>,
}

/// The DER of a signature given as raw `r` and `s`.
#[cfg(feature = "hsm")]
pub(crate) fn der_from_raw(r: &[u8], s: &[u8]) -> Result<Vec<u8>, CaError> {
    let bad = |e| CaError::malformed("ECDSA signature".to_string(), e);
    let uint = |b| UintRef::new(b).map_err(bad);
    der::Encode::to_der(&EcdsaSigValue { r: uint(r)?, s: uint(s)? }).map_err(bad)
}

/// Raw `r || s`, each left-padded to `half` bytes (32 for P-256), from DER.
pub(crate) fn raw_from_der(der: &[u8], half: usize) -> Result<Vec<u8>, CaError> {
    let bad = |e: &dyn std::fmt::Display| CaError::malformed("ECDSA signature".to_string(), e);
    let sig = <EcdsaSigValue as der::Decode>::from_der(der).map_err(|e| bad(&e))?;
    let mut raw = vec![0u8; 2 * half];
    for (at, n) in [(0, sig.r.as_bytes()), (half, sig.s.as_bytes())] {
        if n.len() > half {
            return Err(bad(&format!("an integer of {} bytes, more than {half}", n.len())));
        }
        raw[at + half - n.len()..at + half].copy_from_slice(n);
    }
    Ok(raw)
}
