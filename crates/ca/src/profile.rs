//! An Apple configuration profile (`.mobileconfig`) for iPhone, iPad and
//! Mac: the device's PKCS#12 (`com.apple.security.pkcs12`) and the city's
//! root CA (`com.apple.security.root`), so one tap installs both. Written as
//! an XML property list by the `plist` crate. The profile is not signed
//! (the device shows it as unverified); the PKCS#12 inside stays sealed with
//! its password, which the device asks for while installing, so the file
//! alone gives nobody the key.

use plist::{Dictionary, Value};

use crate::error::CaError;

/// What the profile is called on the device and where it comes from.
pub struct ProfileNames<'a> {
    /// Shown as the profile's name (「電子@連絡帳 端末証明書」).
    pub display_name: &'a str,
    /// Shown as who made it.
    pub organization: &'a str,
    /// A reverse-DNS prefix; the device's own id is added to it, so a
    /// renewed profile replaces the one before it.
    pub identifier: &'a str,
    /// Names the device (its number), for the identifier and the file names.
    pub device: i64,
}

fn payload(kind: &str, identifier: String, display: &str, file: &str, content: Vec<u8>) -> Value {
    let mut d = Dictionary::new();
    d.insert("PayloadType".into(), kind.into());
    d.insert("PayloadVersion".into(), 1.into());
    d.insert("PayloadIdentifier".into(), identifier.into());
    d.insert("PayloadUUID".into(), uuid::Uuid::new_v4().to_string().to_uppercase().into());
    d.insert("PayloadDisplayName".into(), display.into());
    d.insert("PayloadCertificateFileName".into(), file.into());
    d.insert("PayloadContent".into(), Value::Data(content));
    Value::Dictionary(d)
}

/// The profile holding `pkcs12` and the root CA `root_der`, as XML.
pub fn mobileconfig(names: &ProfileNames<'_>, pkcs12: &[u8], root_der: &[u8]) -> Result<Vec<u8>, CaError> {
    let base = format!("{}.device{}", names.identifier, names.device);
    let identity = payload(
        "com.apple.security.pkcs12",
        format!("{base}.identity"),
        "端末証明書",
        &format!("device-{}.p12", names.device),
        pkcs12.to_vec(),
    );
    let root =
        payload("com.apple.security.root", format!("{base}.root"), "ルート認証局", "root-ca.cer", root_der.to_vec());
    configuration(names, base, vec![identity, root])
}

/// What a SCEP profile asks the device to do: enroll at `url` with the
/// one-time `challenge`, for the person `login` (the CN the service expects).
pub struct ScepEnrollment<'a> {
    pub url: &'a str,
    pub challenge: &'a str,
    pub login: Option<&'a str>,
    /// Names the person (their number), for the identifier.
    pub user: i64,
}

/// A profile for a device-management system to push: a SCEP payload
/// (`com.apple.security.scep`) with which the device makes its own RSA key
/// and enrolls, and the city's root, as XML.
pub fn scep_mobileconfig(
    names: &ProfileNames<'_>,
    scep: &ScepEnrollment<'_>,
    root_der: &[u8],
) -> Result<Vec<u8>, CaError> {
    let base = format!("{}.scep.user{}", names.identifier, scep.user);
    let mut content = Dictionary::new();
    content.insert("URL".into(), scep.url.into());
    content.insert("Name".into(), "CONNECT".into());
    content.insert("Challenge".into(), scep.challenge.into());
    // The service checks the key (RSA, 2048 bits at least): SCEP answers
    // are encrypted to it, so it cannot be an EC key.
    content.insert("KeyType".into(), "RSA".into());
    content.insert("Keysize".into(), 2048.into());
    // Signing and encryption (1 | 4): a client certificate for TLS.
    content.insert("KeyUsage".into(), 5.into());
    if let Some(login) = scep.login {
        let cn = Value::Array(vec![Value::Array(vec![Value::Array(vec!["CN".into(), login.into()])])]);
        content.insert("Subject".into(), cn);
    }
    let mut enroll = Dictionary::new();
    enroll.insert("PayloadType".into(), "com.apple.security.scep".into());
    enroll.insert("PayloadVersion".into(), 1.into());
    enroll.insert("PayloadIdentifier".into(), format!("{base}.identity").into());
    enroll.insert("PayloadUUID".into(), uuid::Uuid::new_v4().to_string().to_uppercase().into());
    enroll.insert("PayloadDisplayName".into(), "端末証明書 (SCEP)".into());
    enroll.insert("PayloadContent".into(), Value::Dictionary(content));
    let root =
        payload("com.apple.security.root", format!("{base}.root"), "ルート認証局", "root-ca.cer", root_der.to_vec());
    configuration(names, base, vec![Value::Dictionary(enroll), root])
}

/// The top of a profile holding `payloads`, as XML.
fn configuration(names: &ProfileNames<'_>, identifier: String, payloads: Vec<Value>) -> Result<Vec<u8>, CaError> {
    let mut top = Dictionary::new();
    top.insert("PayloadType".into(), "Configuration".into());
    top.insert("PayloadVersion".into(), 1.into());
    top.insert("PayloadIdentifier".into(), identifier.into());
    top.insert("PayloadUUID".into(), uuid::Uuid::new_v4().to_string().to_uppercase().into());
    top.insert("PayloadDisplayName".into(), names.display_name.into());
    top.insert("PayloadOrganization".into(), names.organization.into());
    top.insert("PayloadRemovalDisallowed".into(), false.into());
    top.insert("PayloadContent".into(), Value::Array(payloads));
    let mut out = Vec::new();
    Value::Dictionary(top).to_writer_xml(&mut out).map_err(|e| CaError::malformed("configuration profile", e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_carries_the_pkcs12_and_the_root_as_their_own_payloads() {
        let names =
            ProfileNames { display_name: "端末証明書", organization: "市", identifier: "jp.example", device: 7 };
        let xml = mobileconfig(&names, b"p12 bytes", b"root der").expect("profile");
        let read = Value::from_reader_xml(xml.as_slice()).expect("a property list");
        let top = read.as_dictionary().expect("a dictionary");
        assert_eq!(top.get("PayloadType").and_then(Value::as_string), Some("Configuration"));
        assert_eq!(top.get("PayloadIdentifier").and_then(Value::as_string), Some("jp.example.device7"));
        let payloads = top.get("PayloadContent").and_then(Value::as_array).expect("payloads");
        let kinds: Vec<(&str, &[u8])> = payloads
            .iter()
            .map(|p| {
                let p = p.as_dictionary().expect("payload");
                let uuid = p.get("PayloadUUID").and_then(Value::as_string).expect("uuid");
                assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{uuid}");
                (
                    p.get("PayloadType").and_then(Value::as_string).expect("type"),
                    p.get("PayloadContent").and_then(Value::as_data).expect("data"),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![("com.apple.security.pkcs12", &b"p12 bytes"[..]), ("com.apple.security.root", &b"root der"[..])]
        );
    }
}
