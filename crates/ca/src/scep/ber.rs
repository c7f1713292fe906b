//! BER to DER, for what SCEP clients send.
//!
//! Real clients (Apple devices, OpenSSL's streaming CMS, Go's pkcs7) send
//! BER: indefinite lengths, long-form lengths where a short one fits, OCTET
//! STRINGs split into constructed chunks. The `der` crate rightly refuses
//! all of that, so a message is rewritten into DER first. `asn1-rs` (the
//! BER reader under x509-parser) reads each element, with its own depth
//! limit; `der` writes the lengths. What is rewritten here is only the
//! layout — every value's bytes are kept — so a signature over DER content
//! still verifies.

use asn1_rs::{Any, Class, FromBer, Tag};
use der::Encode;

use crate::CaError;

/// Deeper than any SCEP message nests (about 12); bounds the recursion of
/// this rewrite on hostile input (asn1-rs bounds its own reading too).
const MAX_DEPTH: usize = 40;

fn refused(why: impl std::fmt::Display) -> CaError {
    CaError::malformed("SCEP message (BER)", why)
}

/// The DER form of the one BER element in `input` (nothing may follow it).
pub fn to_der(input: &[u8]) -> Result<Vec<u8>, CaError> {
    let (rest, der) = element(input, 0)?;
    if !rest.is_empty() {
        return Err(refused(format!("{} bytes after the message", rest.len())));
    }
    Ok(der)
}

/// The first element of `input` as DER, and what follows it.
fn element(input: &[u8], depth: usize) -> Result<(&[u8], Vec<u8>), CaError> {
    if depth > MAX_DEPTH {
        return Err(refused("nested too deeply"));
    }
    let (rest, any) = Any::from_ber(input).map_err(refused)?;
    let header = &any.header;
    if header.is_primitive() {
        return Ok((rest, encode(header.class(), false, header.tag(), any.data)?));
    }
    let mut children = Vec::new();
    let mut data = any.data;
    while !data.is_empty() {
        let (more, child) = element(data, depth + 1)?;
        children.push(child);
        data = more;
    }
    // A constructed OCTET STRING (BER's chunks) is one primitive in DER.
    if header.class() == Class::Universal && header.tag() == Tag::OctetString {
        let mut joined = Vec::new();
        for child in &children {
            joined.extend_from_slice(octets_of(child)?);
        }
        return Ok((rest, encode(Class::Universal, false, Tag::OctetString, &joined)?));
    }
    Ok((rest, encode(header.class(), true, header.tag(), &children.concat())?))
}

/// The content of a chunk of a constructed OCTET STRING (already DER).
pub(crate) fn octets_of(der: &[u8]) -> Result<&[u8], CaError> {
    let (rest, any) = Any::from_ber(der).map_err(refused)?;
    if !rest.is_empty() || any.header.tag() != Tag::OctetString || any.header.is_constructed() {
        return Err(refused("a chunk of an OCTET STRING is not an OCTET STRING"));
    }
    Ok(any.data)
}

/// One element: its identifier octet, its length (written by `der`) and
/// `content`.
pub(crate) fn encode(class: Class, constructed: bool, tag: Tag, content: &[u8]) -> Result<Vec<u8>, CaError> {
    // Tag numbers from 31 need the multi-byte form; no CMS or SCEP
    // structure uses one.
    let number = u8::try_from(tag.0).ok().filter(|n| *n < 31).ok_or_else(|| refused("a tag number above 30"))?;
    let class_bits = match class {
        Class::Universal => 0x00,
        Class::Application => 0x40,
        Class::ContextSpecific => 0x80,
        Class::Private => 0xC0,
    };
    let mut out = vec![class_bits | if constructed { 0x20 } else { 0 } | number];
    let length = der::Length::try_from(content.len()).map_err(refused)?;
    length.encode_to_vec(&mut out).map_err(refused)?;
    out.extend_from_slice(content);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_lengths_and_chunked_octet_strings_become_der() {
        // SEQUENCE (indefinite) { OCTET STRING (constructed, indefinite) { "ab", "c" }, INTEGER 5 }
        let ber = [
            0x30, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00, 0x02, 0x01, 0x05, 0x00, 0x00,
        ];
        assert_eq!(to_der(&ber).expect("normalised"), [0x30, 0x08, 0x04, 0x03, b'a', b'b', b'c', 0x02, 0x01, 0x05]);
    }

    #[test]
    fn long_form_lengths_become_short_and_der_is_unchanged() {
        let ber = [0x04, 0x81, 0x02, 0x01, 0x02];
        assert_eq!(to_der(&ber).expect("normalised"), [0x04, 0x02, 0x01, 0x02]);
        let der = [0x30, 0x06, 0x02, 0x01, 0x01, 0x01, 0x01, 0xFF];
        assert_eq!(to_der(&der).expect("same"), der);
    }

    #[test]
    fn truncated_trailing_and_too_deep_input_is_refused() {
        assert!(to_der(&[0x30, 0x80, 0x02, 0x01, 0x05]).is_err());
        assert!(to_der(&[0x02, 0x01, 0x05, 0x00]).is_err());
        let mut deep = Vec::new();
        for _ in 0..200 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        deep.extend(std::iter::repeat_n(0x00, 400));
        assert!(to_der(&deep).is_err());
    }
}
