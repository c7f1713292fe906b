//! Identifier newtypes. Each is parsed once at the edge; the rest of the code
//! never handles a raw string or integer in their place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DomainError;

macro_rules! int_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Database identifier of a ", $what, ".")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.parse::<i64>() {
                    Ok(n) if n > 0 => Ok(Self(n)),
                    _ => Err(DomainError::Invalid {
                        field: concat!($what, " id"),
                        why: format!("{s:?} is not a positive integer"),
                    }),
                }
            }
        }
    };
}

int_id!(FacilityId, "facility");
int_id!(UserId, "user");
int_id!(DeviceId, "device");

/// A certificate serial number: the big-endian bytes of the DER INTEGER
/// content, shown as lowercase hex without colons (DESIGN §5).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// The serial whose DER INTEGER content is `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DomainError> {
        if bytes.is_empty() || bytes.len() > 20 {
            return Err(DomainError::Invalid {
                field: "serial",
                why: format!("must be 1 to 20 bytes, got {}", bytes.len()),
            });
        }
        Ok(Self(bytes.to_vec()))
    }

    /// The DER INTEGER content bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lowercase hex without separators: the form stored and shown at the API.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl FromStr for Serial {
    type Err = DomainError;

    /// Accepts lowercase or uppercase hex, with or without `:` separators.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let clean: String = s.chars().filter(|c| *c != ':').collect();
        let invalid = |why: &str| DomainError::Invalid { field: "serial", why: format!("{s:?} {why}") };
        if clean.is_empty() || !clean.len().is_multiple_of(2) || !clean.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid("is not an even-length hex string"));
        }
        let bytes: Vec<u8> = (0..clean.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&clean[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| invalid("is not hex"))?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl Serialize for Serial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_round_trips_through_hex_and_accepts_colons() {
        let s: Serial = "7F:0a:11".parse().expect("valid");
        assert_eq!(s.as_bytes(), &[0x7f, 0x0a, 0x11]);
        assert_eq!(s.to_hex(), "7f0a11");
    }

    #[test]
    fn serial_rejects_odd_length_non_hex_and_oversize() {
        for bad in ["", "abc", "zz", &"00".repeat(21)] {
            assert!(bad.parse::<Serial>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!("12".parse::<UserId>(), Ok(UserId(12)));
        assert!("0".parse::<UserId>().is_err());
        assert!("-3".parse::<DeviceId>().is_err());
        assert!("x".parse::<FacilityId>().is_err());
    }
}
