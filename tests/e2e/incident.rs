//! The incident record of a lost device (issue 14), end to end: nginx
//! (Debian's, `ssl_ocsp` on our responder) is one relying party, a CRL
//! fetcher on another address the second. A device gets through nginx, is
//! reported lost, is refused by nginx at its next connection and by our own
//! listener. The signed record shows nginx's last `good` before the
//! revocation and first `revoked` after it, the CRL download that listed
//! it, and the refused handshakes; the signature verifies with
//! `connect-pki receipt verify` and with Python `cryptography`, and fails
//! after one byte of the record is changed; the OCSP response inside
//! verifies with `openssl ocsp`, the CRL inside with `openssl crl`.

use std::path::Path;

use connect_pki_e2e::fixtures::device;
use connect_pki_e2e::{Backend, Server, binary, both_backends, text};
use serde_json::Value;

use crate::nginx::{free_port, start_nginx, through_nginx};

const CRL_PARTY: &str = "CRL取得システム";

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The CRL downloaded from 127.0.0.2 (the second relying party); its number.
fn fetch_crl(s: &Server, name: &str) -> u64 {
    let file = s.scratch(name);
    let (code, status, _) = s.curl_public("/crl/issuing.crl", &["--interface", "127.0.0.2", "-o", &path(&file)]);
    assert_eq!((code, status), (0, 200));
    crl_number(s, &file)
}

/// The number of the DER CRL in `file`, as openssl reads it.
fn crl_number(s: &Server, file: &Path) -> u64 {
    let o = s.run("openssl", &["crl", "-inform", "DER", "-in", &path(file), "-noout", "-crlnumber"]);
    let said = text(&o);
    let hex = said.trim().trim_start_matches("crlNumber=0x").trim_start_matches("crlNumber=");
    u64::from_str_radix(hex.trim(), 16).unwrap_or_else(|e| panic!("{said}: {e}"))
}

fn events<'a>(record: &'a Value, event: &str) -> Vec<&'a Value> {
    let all = record["timeline"].as_array().expect("timeline");
    all.iter().filter(|e| e["event"] == event).collect()
}

fn one<'a>(record: &'a Value, event: &str, who: &str) -> &'a Value {
    events(record, event)
        .into_iter()
        .find(|e| e["who"] == who)
        .unwrap_or_else(|| panic!("no {event} for {who}: {}", record["timeline"]))
}

/// Each relying party's exposure (issue 26, item 5): nginx went by its last
/// `good` and learnt of the revocation at its first `revoked`; the CRL
/// fetcher went by the CRL it held (made before the revocation, as
/// `openssl crl` reads it) until it downloaded the one listing it.
fn exposure_is_stated(s: &Server, record: &Value, revoked_at: &str, good: &str, told: &str) {
    let nginx = one(record, "exposure.until", "nginx");
    assert_eq!(nginx["detail"]["ocsp_good_at"].as_str(), Some(good), "{nginx}");
    assert_eq!(nginx["detail"]["learnt_at"].as_str(), Some(told), "{nginx}");
    let until = nginx["at"].as_str().expect("at");
    assert!(revoked_at <= until && until <= told, "nginx exposed until {until}: revoked {revoked_at}, told {told}");
    let seconds = nginx["detail"]["seconds"].as_i64().expect("seconds");
    assert!((0..=3).contains(&seconds), "{nginx}");

    let fetcher = one(record, "exposure.until", CRL_PARTY);
    let o = s.run("openssl", &["crl", "-inform", "DER", "-in", "before.crl", "-noout", "-lastupdate"]);
    let last_update = text(&o).trim().trim_start_matches("lastUpdate=").to_string();
    let held = fetcher["detail"]["crl_this_update"].as_str().expect("the CRL it held");
    let parsed = time::OffsetDateTime::parse(held, &time::format_description::well_known::Rfc3339).expect("time");
    let openssl_form = time::format_description::parse_borrowed::<2>(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT",
    )
    .expect("format");
    assert_eq!(parsed.format(&openssl_form).expect("format"), last_update, "{fetcher}");
    let listed = one(record, "crl.listed", CRL_PARTY)["at"].as_str().expect("at").to_string();
    assert_eq!(fetcher["detail"]["learnt_at"].as_str(), Some(listed.as_str()), "{fetcher}");
    assert_eq!(fetcher["at"].as_str(), Some(listed.as_str()), "the CRL outlives the wait: {fetcher}");
}

fn receipt_verify(s: &Server, file: &Path) -> std::process::Output {
    let args = ["receipt", "verify", &path(file), "--data-dir", &path(&s.data_dir)];
    s.run(&path(binary()), &args)
}

async fn a_lost_device_leaves_a_signed_record(backend: Backend) {
    let mut s = Server::start(backend).await;
    s.stop();
    // nginx reaches the responder from 127.0.0.1; the CRL fetcher from 127.0.0.2.
    let config = std::fs::read_to_string(s.data("config.toml")).expect("config");
    let named = format!("{config}\n[relying_parties]\nnginx = [\"127.0.0.1\"]\n\"{CRL_PARTY}\" = [\"127.0.0.2\"]\n");
    std::fs::write(s.data("config.toml"), named).expect("write config");
    s.spawn(&[("CONNECT_PKI_RELYING_PARTY_FLUSH_SECONDS", "1")]);
    let admin = s.admin_pem();

    let d = device(&s, &admin, "lost.device");
    let (pem, serial, device) = (d.pem, d.serial, d.device_id);

    // In use: through nginx (which asks our OCSP responder), and the CRL
    // fetcher holds the current CRL.
    let port = free_port();
    let _nginx = start_nginx(&s, port);
    let (status, out) = through_nginx(&s, port, &pem);
    assert_eq!(status, 200, "{out}");
    let before = fetch_crl(&s, "before.crl");

    // Reported lost at a moment of the test's choosing.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, out) = s.api("POST", &format!("/api/v1/devices/{device}/lost"), Some(&admin), None);
    assert_eq!(status, 200, "{out}");
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // nginx refuses it at its next connection, and so does our listener.
    let (status, out) = through_nginx(&s, port, &pem);
    assert_eq!(status, 400, "nginx let the lost device through: {out}");
    let (code, status, _) = s.curl_api("/api/v1/whoami", &["--cert", &path(&pem)]);
    assert!(code != 0 && status == 0, "our listener let the lost device in");
    let after = fetch_crl(&s, "after.crl");
    assert!(after > before);

    // The record.
    let (status, got) = s.api("GET", &format!("/api/v1/certificates/{serial}/incident"), Some(&admin), None);
    assert_eq!(status, 200, "{got}");
    let record = &got["record"];
    let revoked_at = record["certificate"]["revoked_at"].as_str().expect("revoked").to_string();
    assert_eq!(record["certificate"]["status"], "revoked", "{record}");
    assert!(!events(record, "device.lost").is_empty(), "{}", record["timeline"]);
    assert!(!events(record, "certificate.revoke").is_empty(), "{}", record["timeline"]);
    let good = one(record, "ocsp.last_good", "nginx")["at"].as_str().expect("at").to_string();
    let told = one(record, "ocsp.first_revoked", "nginx")["at"].as_str().expect("at").to_string();
    assert!(good < revoked_at && revoked_at <= told, "good {good}, revoked {revoked_at}, told {told}");
    let listed = one(record, "crl.listed", CRL_PARTY);
    assert_eq!(listed["detail"]["crl_number"], after, "{listed}");
    assert!(listed["at"].as_str() >= Some(revoked_at.as_str()), "{listed}");
    let refused = &events(record, "handshake.first_refused")[0];
    assert!(refused["at"].as_str() >= Some(revoked_at.as_str()), "{refused}");
    assert!(!events(record, "handshake.last_ok").is_empty(), "{}", record["timeline"]);
    assert_eq!(record["proof"]["crl"]["lists_certificate"], true, "{record}");
    exposure_is_stated(&s, record, &revoked_at, &good, &told);

    // The proof inside: openssl checks the OCSP response on its own.
    let der = base64_decode(record["proof"]["ocsp_response"].as_str().expect("response"));
    std::fs::write(s.scratch("proof.der"), der).expect("write");
    let (root, issuing) = (path(&s.data("ca/root.pem")), path(&s.data("ca/issuing.pem")));
    let o = s.run(
        "openssl",
        &["ocsp", "-respin", "proof.der", "-issuer", &issuing, "-CAfile", &root, "-serial", &format!("0x{serial}")],
    );
    let said = text(&o);
    assert!(said.contains("Response verify OK") && said.contains(": revoked"), "{said}");
    // And the CRL inside: the issuing CA's, with the number the record names, listing the certificate.
    let crl = &record["proof"]["crl"];
    std::fs::write(s.scratch("proof.crl"), base64_decode(crl["der"].as_str().expect("the CRL"))).expect("write");
    let o = s.run("openssl", &["crl", "-inform", "DER", "-in", "proof.crl", "-CAfile", &issuing, "-noout", "-text"]);
    let said = text(&o);
    assert!(said.contains("verify OK"), "{said}");
    let number = crl["crl_number"].as_u64().expect("a number");
    assert_eq!(crl_number(&s, &s.scratch("proof.crl")), number);
    assert!(number >= after, "the record's CRL {number} is older than the one downloaded, {after}");
    assert!(said.to_lowercase().contains(&format!("serial number: {serial}")), "{serial} not listed: {said}");

    // The signature: ours, and an outside implementation's.
    let file = s.scratch("incident.json");
    std::fs::write(&file, got.to_string()).expect("write");
    let o = receipt_verify(&s, &file);
    let said = text(&o);
    assert!(o.status.success() && said.contains("signature OK"), "{said}");
    assert!(said.contains("OCSP response in the record: signature OK, revoked"), "{said}");
    assert!(said.contains(&format!("number {number} of")) && said.contains("lists the certificate"), "{said}");
    let outside = s.python_json("jws_verify.py", &[&path(&file), &root]);
    assert_eq!(outside["valid"], true, "{outside}");
    assert_eq!(outside["payload"], *record, "the signed payload is not the record shown");

    // One byte of the signed record changed: both refuse it.
    let jws = got["signed"].as_str().expect("jws");
    let mut parts: Vec<String> = jws.split('.').map(str::to_string).collect();
    let mut payload = base64_url_decode(&parts[1]);
    let at = payload.windows(8).position(|w| w == b"\"status\"").expect("a status in the payload") + 11;
    payload[at] ^= 0x01;
    parts[1] = base64_url_encode(&payload);
    let forged = s.scratch("forged.jws");
    std::fs::write(&forged, parts.join(".")).expect("write");
    let o = receipt_verify(&s, &forged);
    assert!(!o.status.success() && text(&o).contains("does not verify"), "{}", text(&o));
    let outside = s.python_json("jws_verify.py", &[&path(&forged), &root]);
    assert_eq!(outside["signature_valid"], false, "{outside}");

    // The page a clerk prints.
    let (code, status, html) =
        s.curl_api(&format!("/console/certificates/{serial}/incident"), &["--cert", &path(&admin)]);
    assert_eq!((code, status), (0, 200), "{html}");
    for words in
        ["事故の記録", "OCSP で「失効」と回答（最初）", "失効を載せた CRL を取得", "接続を拒否（最初）", CRL_PARTY]
    {
        assert!(html.contains(words), "{words} not on the page: {html}");
    }
}
both_backends!(a_lost_device_leaves_a_signed_record);

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

fn base64_url_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
