//! SCEP (RFC 8894, issue 26 item 2) with clients no one here wrote: the
//! micromdm `scep` client and strongSwan's `pki --scep`, both from Debian.
//! GetCACaps offers no DES, MD5 or SHA-1; GetCACert holds the issuing CA and
//! an RA certificate that is not the CA's. Each client enrolls with a
//! one-time challenge (a wrong one and a reused one refused, with the
//! reason in `X-Connect-Refusal`) and renews with its certificate; the
//! certificates pass `openssl verify`, OCSP and our handshake, the renewed
//! one supersedes the old, and once a certificate is revoked its renewal is
//! refused.

use std::path::{Path, PathBuf};

use connect_pki_e2e::{Backend, FakeTime, Server, text};

use crate::est::{ends_within, openssl, path, reenrolled, renewed, report_lost};
use crate::revocation::{handshake_ok, ocsp_status, revoke};
use crate::scenarios::{openssl_verify, serial_of};

/// The SCEP URL on the plain listener.
pub(crate) fn url(s: &Server) -> String {
    format!("http://{}/scep", s.public)
}

/// A new one-time enrollment code for a new member of staff `login`.
pub(crate) fn code_for(s: &Server, admin: &Path, login: &str) -> String {
    let body =
        serde_json::json!({"display_name": "SCEP 端末", "login_id": login, "email": format!("{login}@example.test")});
    let (status, user) = s.api("POST", "/api/v1/facilities/1/users", Some(admin), Some(&body));
    assert_eq!(status, 201, "{user}");
    let (_, code) = s.api("POST", &format!("/api/v1/users/{}/enrollment-codes", user["id"]), Some(admin), None);
    code["code"].as_str().expect("code").to_string()
}

/// The SHA-256 fingerprint of the RA certificate (hex), as a
/// device-management system pins it: the micromdm client encrypts to every
/// certificate GetCACert returns unless told which (and cannot encrypt to
/// the CA's EC key).
pub(crate) fn ra_fingerprint(s: &Server) -> String {
    let out = openssl(s, &["x509", "-in", &path(&s.data("ca/scep-ra.pem")), "-noout", "-fingerprint", "-sha256"]);
    out.trim().rsplit('=').next().expect("fingerprint").replace(':', "").to_lowercase()
}

/// `scepclient` with `key` and `cert` in the scratch directory, for the
/// person `login` (the CSR's CN): a PKCSReq when `cert` does not exist,
/// else a RenewalReq signed by it. (Succeeded, output.)
pub(crate) fn scepclient(s: &Server, key: &Path, cert: &Path, challenge: &str, login: &str) -> (bool, String) {
    let fingerprint = ra_fingerprint(s);
    // It keeps the CSR it made (with the challenge in it) in `csr.pem` in
    // its working directory and sends that again: each run makes its own.
    let _ = std::fs::remove_file(s.scratch("csr.pem"));
    let o = s.run(
        "scepclient",
        &[
            "-server-url",
            &url(s),
            "-private-key",
            &path(key),
            "-certificate",
            &path(cert),
            "-challenge",
            challenge,
            "-cn",
            login,
            "-ca-fingerprint",
            &fingerprint,
        ],
    );
    (o.status.success(), text(&o))
}

/// A client certificate file (certificate, then key) for curl and openssl.
pub(crate) fn full(s: &Server, name: &str, cert: &Path, key: &Path) -> PathBuf {
    let file = s.scratch(&format!("{name}-full.pem"));
    let cert_pem = openssl(s, &["x509", "-in", &path(cert)]);
    let key_pem = std::fs::read_to_string(key).expect("key");
    std::fs::write(&file, format!("{cert_pem}{key_pem}")).expect("write");
    file
}

/// Whether the server refused a PKIOperation for `code` (the client only
/// shows SCEP's failInfo; the log line, like `X-Connect-Refusal`, names it).
fn refused_with(s: &Server, code: &str) -> bool {
    s.log_contains(&format!("code=\"{code}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_and_ca_certificates_offer_no_weak_algorithm_and_a_separate_ra() {
    let s = Server::start(Backend::Sqlite).await;
    let (_, status, caps) = s.curl_public("/scep?operation=GetCACaps", &[]);
    assert_eq!(status, 200, "{caps}");
    let lines: Vec<&str> = caps.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "200").collect();
    for wanted in ["POSTPKIOperation", "SHA-256", "AES", "SCEPStandard", "Renewal"] {
        assert!(lines.contains(&wanted), "{wanted} missing from {lines:?}");
    }
    for weak in ["DES", "DES3", "MD5", "SHA-1"] {
        assert!(!lines.contains(&weak), "{weak} offered: {lines:?}");
    }
    let der = s.scratch("getcacert.p7");
    let (code, status, _) = s.curl_public("/scep?operation=GetCACert", &["-o", &path(&der)]);
    assert_eq!((code, status), (0, 200));
    let pems = openssl(&s, &["pkcs7", "-inform", "DER", "-in", &path(&der), "-print_certs"]);
    let issuing = std::fs::read_to_string(s.data("ca/issuing.pem")).expect("issuing CA");
    assert!(pems.contains(issuing.trim()), "the issuing CA is missing:\n{pems}");
    let printed = openssl(&s, &["pkcs7", "-inform", "DER", "-in", &path(&der), "-print_certs", "-text", "-noout"]);
    assert!(printed.contains("CONNECT SCEP RA") && printed.contains("Key Encipherment"), "{printed}");
    // The RA's key is RSA and not the CA's.
    let ra_key = openssl(&s, &["x509", "-in", &path(&s.data("ca/scep-ra.pem")), "-noout", "-pubkey"]);
    let ca_key = openssl(&s, &["x509", "-in", &path(&s.data("ca/issuing.pem")), "-noout", "-pubkey"]);
    assert_ne!(ra_key, ca_key);
    assert!(printed.contains("rsaEncryption"), "{printed}");
    // The RA certificate chains to the root like any other, and is no
    // client certificate.
    let (root, issuing) = (path(&s.data("ca/root.pem")), path(&s.data("ca/issuing.pem")));
    let ra = path(&s.data("ca/scep-ra.pem"));
    assert!(openssl(&s, &["verify", "-CAfile", &root, "-untrusted", &issuing, &ra]).contains(": OK"));
    assert!(!openssl_verify(&s, &s.data("ca/scep-ra.pem")).contains(": OK"));
    // An unknown operation is a JSON error, not a panic or an empty answer.
    let (_, status, out) = s.curl_public("/scep?operation=GetNextCACert", &[]);
    assert_eq!(status, 400, "{out}");
    assert!(out.contains("GetCACaps"), "{out}");
    let garbage = s.scratch("garbage.bin");
    std::fs::write(&garbage, [0x30, 0x80, 0x02, 0x01]).expect("write");
    let at = format!("@{}", path(&garbage));
    let (_, status, out) = s.curl_public("/scep?operation=PKIOperation", &["--data-binary", &at]);
    assert_eq!(status, 400, "{out}");
}

const LOGIN: &str = "scep.micromdm";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_micromdm_client_enrolls_with_a_one_time_challenge_and_renews_on_sqlite() {
    micromdm(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_micromdm_client_enrolls_with_a_one_time_challenge_and_renews_on_postgres() {
    micromdm(Backend::Postgres).await;
}

async fn micromdm(backend: Backend) {
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let code = code_for(&s, &admin, LOGIN);
    let (key, cert) = (s.scratch("mm.key"), s.scratch("mm.pem"));

    let (ok, out) = scepclient(&s, &key, &cert, "ABCD-EFGH-JKMN-PQRS", LOGIN);
    assert!(!ok && !cert.exists(), "a wrong challenge was accepted: {out}");
    assert!(refused_with(&s, "invalid_code"), "{out}\n{}", s.log());

    let (ok, out) = scepclient(&s, &key, &cert, &code, LOGIN);
    assert!(ok, "{out}\n{}", s.log());
    assert!(openssl_verify(&s, &cert).contains(": OK"), "{}", openssl_verify(&s, &cert));
    let first = full(&s, "mm-first", &cert, &key);
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&first), None);
    assert_eq!((status, me["login_id"].as_str()), (200, Some("scep.micromdm")), "{me}");
    assert_eq!(ocsp_status(&s, &first), "good");
    assert!(handshake_ok(&s, &first));

    // The same challenge again, from another key: refused, the code is used.
    let (key2, cert2) = (s.scratch("mm2.key"), s.scratch("mm2.pem"));
    let (ok, out) = scepclient(&s, &key2, &cert2, &code, LOGIN);
    assert!(!ok && !cert2.exists(), "a reused challenge was accepted: {out}");
    assert!(refused_with(&s, "code_used"), "{}", s.log());

    // Renewal: a RenewalReq signed by the current certificate.
    let old_serial = serial_of(&s, &first);
    let (ok, out) = scepclient(&s, &key, &cert, "", LOGIN);
    assert!(ok, "{out}\n{}", s.log());
    let second = full(&s, "mm-second", &cert, &key);
    assert_ne!(serial_of(&s, &second), old_serial, "the renewal returned the old certificate");
    assert!(openssl_verify(&s, &cert).contains(": OK"));
    assert_eq!(ocsp_status(&s, &first), "revoked superseded");
    assert_eq!(ocsp_status(&s, &second), "good");
    assert!(!handshake_ok(&s, &first) && handshake_ok(&s, &second));

    // Revoked: its renewal is refused.
    let (status, out) = revoke(&s, &admin, &serial_of(&s, &second), "keyCompromise");
    assert_eq!(status, 200, "{out}");
    let before = std::fs::read(&cert).expect("cert");
    let (ok, out) = scepclient(&s, &key, &cert, "", LOGIN);
    assert!(!ok, "a revoked certificate renewed: {out}");
    assert_eq!(std::fs::read(&cert).expect("cert"), before);
    assert!(refused_with(&s, "certificate_not_usable"), "{}", s.log());
}

/// strongSwan's `pki` with `args`; (succeeded, output).
fn pki(s: &Server, args: &[&str]) -> (bool, String) {
    let o = s.run("pki", args);
    (o.status.success(), text(&o))
}

/// `pki --scep` for `login` with `key`, writing `out`; `old` is the
/// certificate and key a renewal is signed with.
fn pki_scep(
    s: &Server,
    key: &Path,
    out: &Path,
    challenge: Option<&str>,
    old: Option<(&Path, &Path)>,
) -> (bool, String) {
    let (url, key, out) = (url(s), path(key), path(out));
    let (ra, root, ca) =
        (path(&s.scratch("ss-ra.pem")), path(&s.scratch("ss-ca.pem")), path(&s.scratch("ss-ca-1.pem")));
    let dn = format!("CN={STRONGSWAN}");
    let mut args = vec!["--scep", "--url", &url, "--in", &key, "--dn", &dn, "--cacert-enc", &ra, "--cacert-sig", &ra];
    args.extend_from_slice(&["--cacert", &root, "--cacert", &ca, "--outform", "pem", "--maxpolltime", "5"]);
    let old = old.map(|(c, k)| (path(c), path(k)));
    if let Some((c, k)) = &old {
        args.extend_from_slice(&["--cert", c, "--key", k]);
    }
    if let Some(p) = challenge {
        args.extend_from_slice(&["--password", p]);
    }
    let o = s.command("pki").args(&args).stdout(std::fs::File::create(&out).expect("out")).output().expect("pki");
    (o.status.success(), text(&o))
}

const STRONGSWAN: &str = "scep.strongswan";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strongswan_pki_enrolls_with_a_one_time_challenge_and_renews() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let code = code_for(&s, &admin, STRONGSWAN);
    // File name templates, in its working directory (the scratch directory).
    let (ok, out) =
        pki(&s, &["--scepca", "--url", &url(&s), "--caout", "ss-ca", "--raout", "ss-ra", "--outform", "pem"]);
    assert!(ok, "{out}");
    // `pki` names the files by what it found, and checked the RA's chain.
    assert!(out.contains("RA cert is trusted"), "{out}");
    for (file, want) in [("ss-ra.pem", "CONNECT SCEP RA"), ("ss-ca.pem", "Root CA"), ("ss-ca-1.pem", "Issuing CA")] {
        let subject = openssl(&s, &["x509", "-in", &path(&s.scratch(file)), "-noout", "-subject"]);
        assert!(subject.contains(want), "{file}: {subject}\n{out}");
    }
    let key = s.scratch("ss.key");
    let (ok, out) = pki(&s, &["--gen", "--type", "rsa", "--size", "2048", "--outform", "pem"]);
    assert!(ok, "{out}");
    std::fs::write(
        &key,
        out.lines().filter(|l| !l.contains("plugin") && !l.contains("TPM")).collect::<Vec<_>>().join("\n") + "\n",
    )
    .expect("key");

    let cert = s.scratch("ss.pem");
    let (ok, out) = pki_scep(&s, &key, &cert, Some("ABCD-EFGH-JKMN-PQRS"), None);
    assert!(!ok, "a wrong challenge was accepted: {out}");
    let (ok, out) = pki_scep(&s, &key, &cert, Some(&code), None);
    assert!(ok, "{out}\n{}", s.log());
    assert!(openssl_verify(&s, &cert).contains(": OK"), "{}", openssl_verify(&s, &cert));
    let first = full(&s, "ss-first", &cert, &key);
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&first), None);
    assert_eq!((status, me["login_id"].as_str()), (200, Some(STRONGSWAN)), "{me}");
    assert_eq!(ocsp_status(&s, &first), "good");
    let (ok, out) = pki_scep(&s, &key, &s.scratch("ss-again.pem"), Some(&code), None);
    assert!(!ok && refused_with(&s, "code_used"), "a reused challenge was accepted: {out}");

    // Renewal with a new key, signed by the current certificate and key.
    let key2 = s.scratch("ss2.key");
    let (_, out) = pki(&s, &["--gen", "--type", "rsa", "--size", "2048", "--outform", "pem"]);
    std::fs::write(
        &key2,
        out.lines().filter(|l| !l.contains("plugin") && !l.contains("TPM")).collect::<Vec<_>>().join("\n") + "\n",
    )
    .expect("key");
    let cert2 = s.scratch("ss2.pem");
    let (ok, out) = pki_scep(&s, &key2, &cert2, None, Some((&cert, &key)));
    assert!(ok, "{out}\n{}", s.log());
    let second = full(&s, "ss-second", &cert2, &key2);
    assert_eq!(ocsp_status(&s, &first), "revoked superseded");
    assert_eq!(ocsp_status(&s, &second), "good");
    assert!(!handshake_ok(&s, &first) && handshake_ok(&s, &second));
    // The superseded certificate cannot renew again.
    let (ok, out) = pki_scep(&s, &key2, &s.scratch("ss3.pem"), None, Some((&cert, &key)));
    assert!(!ok && refused_with(&s, "certificate_not_usable"), "a superseded certificate renewed: {out}");
}

/// A device enrolled by SCEP is managed: 7-day certificates, renewed by
/// SCEP (a RenewalReq signed by the current one) at half-life on a clock
/// stepped 3.5 days at a time for three weeks. Reported lost, it renews by
/// no path: SCEP, EST, the JSON API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scep_device_renews_at_half_life_until_it_is_reported_lost() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let code = code_for(&s, &admin, STEPPED);
    let (key, cert) = (s.scratch("st.key"), s.scratch("st.pem"));
    let (ok, out) = scepclient(&s, &key, &cert, &code, STEPPED);
    assert!(ok, "{out}\n{}", s.log());
    let mut current = full(&s, "st-0", &cert, &key);
    assert!(ends_within(&s, &current, 7.01) && !ends_within(&s, &current, 6.99), "not a 7-day certificate");
    for step in 1..=6 {
        s.stop();
        s.spawn_at(FakeTime::ahead(time::Duration::hours(84 * step)), &[]);
        let (ok, out) = scepclient(&s, &key, &cert, "", STEPPED);
        assert!(ok, "renewal {step}: {out}\n{}", s.log());
        let next = full(&s, &format!("st-{step}"), &cert, &key);
        renewed(&s, &current, &next, step);
        current = next;
    }
    assert!(handshake_ok(&s, &current));

    report_lost(&s, &admin, &current);
    let (ok, out) = scepclient(&s, &key, &cert, "", STEPPED);
    assert!(!ok && refused_with(&s, "certificate_not_usable"), "SCEP renewed a lost device: {out}");
    assert!(reenrolled(&s, &current, "st-est", STEPPED).is_err(), "EST renewed a lost device");
    let csr = s.openssl_csr("st-json", &format!("/CN={STEPPED}"), &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]).1;
    let body = serde_json::json!({ "csr": csr }).to_string();
    let (code, status, _) = s.curl_api(
        "/api/v1/certificates/renew",
        &["--cert", &path(&current), "-H", "Content-Type: application/json", "--data", &body],
    );
    assert!(code != 0 || status >= 400, "the JSON API renewed a lost device: {status}");
}

const STEPPED: &str = "scep.stepped";

const CERTMONGER: &str = "scep.certmonger";

/// certmonger (the daemon Fedora and Debian keep certificates renewed
/// with), on a session bus of its own: `getcert add-scep-ca`, a request with
/// a wrong challenge (rejected, nothing written), one with the code
/// (enrolled: verified, signs in, `good`), then `getcert resubmit`, which
/// sends the same challenge again: refused as used, the certificate kept.
/// Its throwaway signer certificate has a 32-byte serial number, beyond RFC
/// 5280's 20, which is read all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certmonger_enrolls_with_a_one_time_challenge_and_renews() {
    let s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let code = code_for(&s, &admin, CERTMONGER);
    let (cert, key, wrong) = (s.scratch("cm.pem"), s.scratch("cm.key"), s.scratch("cm-wrong.pem"));
    let script = format!(
        "getcert add-scep-ca -s -c CONNECT -u {url}\n\
         sleep 2\n\
         getcert request -s -c CONNECT -f {wrong} -k {wrong}.key -N CN={CERTMONGER} -L ABCD-EFGH-JKMN-PQRS -w -v\n\
         getcert request -s -c CONNECT -f {cert} -k {key} -N CN={CERTMONGER} -L {code} -w -v\n\
         cp {cert} {cert}.first\n\
         getcert resubmit -s -f {cert} -w -v\n\
         getcert list -s\n",
        url = url(&s),
        wrong = path(&wrong),
        cert = path(&cert),
        key = path(&key),
    );
    std::fs::write(s.scratch("certmonger.sh"), script).expect("script");
    // Its state in the scratch directory (as root it would use /var/lib).
    let home = s.scratch("certmonger-home");
    let mut cmd = s.command("dbus-run-session");
    cmd.args(["--", "certmonger", "-s", "-n", "-c", &format!("bash {}", path(&s.scratch("certmonger.sh")))]);
    for (var, dir) in
        [("CERTMONGER_CAS_DIR", "cas"), ("CERTMONGER_REQUESTS_DIR", "requests"), ("CERTMONGER_LOCAL_CA_DIR", "local")]
    {
        std::fs::create_dir_all(home.join(dir)).expect("dir");
        cmd.env(var, home.join(dir));
    }
    cmd.env("CERTMONGER_TMPDIR", &home).env("CERTMONGER_CONFIG_DIR", &home).env("HOME", &home);
    let o = cmd.output().expect("certmonger (the README's test command installs it)");
    let out = text(&o);
    assert!(!wrong.exists() && refused_with(&s, "invalid_code"), "a wrong challenge was accepted: {out}\n{}", s.log());
    let first = full(&s, "cm-first", &s.scratch("cm.pem.first"), &key);
    assert!(openssl_verify(&s, &first).contains(": OK"), "{out}\n{}", s.log());
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&first), None);
    assert_eq!((status, me["login_id"].as_str()), (200, Some(CERTMONGER)), "{me}");
    assert_eq!(ocsp_status(&s, &first), "good");
    assert!(refused_with(&s, "code_used"), "the resubmitted challenge was not refused: {out}\n{}", s.log());
    let kept = full(&s, "cm-kept", &cert, &key);
    assert_eq!(serial_of(&s, &first), serial_of(&s, &kept), "{out}");
}
