//! Issue 25's scenarios, each walked in Debian's Chromium with axe-core by
//! the people of a year in the city, against the real binary on a clock
//! stepped with libfaketime, each asserting the operating rule it serves:
//! onboarding by post, renewal in month 11, a departure at 年度末, a
//! night-time call, and a log review. The pages are driven by
//! tests/py/scenarios.py; this module holds what every walk shares (also
//! used by the walk of the city's pages, `pages_city`).

mod departure;
mod log_review;
mod night_call;
mod onboarding;
mod renewal;

use std::path::{Path, PathBuf};

use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Server, text, workspace};
use serde_json::{Value, json};

/// The certificate and the key of a PEM file, apart (Playwright takes both).
pub(crate) fn split(s: &Server, pem: &Path) -> (PathBuf, PathBuf) {
    let name = pem.file_stem().expect("name").to_string_lossy().to_string();
    let (cert, key) = (s.scratch(&format!("{name}.crt.pem")), s.scratch(&format!("{name}.key.pem")));
    for (args, out) in [(["x509", "-in"], &cert), (["pkey", "-in"], &key)] {
        let o = s.run("openssl", &[args[0], args[1], &pem.display().to_string(), "-out", &out.display().to_string()]);
        assert!(o.status.success(), "{}", text(&o));
    }
    (cert, key)
}

/// A user of `role` registered in `facility` by `by`, enrolled: their PEM.
pub(crate) fn person(s: &Server, by: &Path, facility: i64, login: &str, role: &str) -> PathBuf {
    s.enroll_generated(&registered(s, by, facility, login, role).1, Some(PASSWORD), login)
}

/// A user of `role` registered in `facility` by `by`, with a code issued:
/// their id and the code.
pub(crate) fn registered(s: &Server, by: &Path, facility: i64, login: &str, role: &str) -> (i64, String) {
    let body = json!({"display_name": format!("{login} さん"), "login_id": login, "email": format!("{login}@example.test"), "role": role});
    let (status, user) = s.api("POST", &format!("/api/v1/facilities/{facility}/users"), Some(by), Some(&body));
    assert_eq!(status, 201, "{user}");
    let (status, code) = s.api("POST", &format!("/api/v1/users/{}/enrollment-codes", user["id"]), Some(by), None);
    assert_eq!(status, 201, "{code}");
    (user["id"].as_i64().expect("id"), code["code"].as_str().expect("code").to_string())
}

/// A facility applied for and approved by `admin`, its manager enrolled:
/// (facility id, manager's user id, manager's PEM).
pub(crate) fn facility(s: &Server, admin: &Path, name: &str, login: &str) -> (i64, i64, PathBuf) {
    let (status, made) =
        s.public_api("POST", "/api/v1/applications", Some(&connect_pki_e2e::fixtures::application(name, login)));
    assert_eq!(status, 201, "{made}");
    let (status, approval) = s.api("POST", &format!("/api/v1/applications/{}/approve", made["id"]), Some(admin), None);
    assert_eq!(status, 200, "{approval}");
    let code = approval["enrollment_code"]["code"].as_str().expect("code");
    let pem = s.enroll_generated(code, Some(PASSWORD), &format!("{login}-pc"));
    let (_, me) = s.api("GET", "/api/v1/whoami", Some(&pem), None);
    (approval["facility_id"].as_i64().expect("facility"), me["user_id"].as_i64().expect("user"), pem)
}

/// Runs one phase of a walk script in tests/py as the holder of `pem` (or
/// without a certificate), on the server's clock; checks that axe found
/// nothing serious or critical on any page the phase looked at, and returns
/// what the pages said. Screenshots go to tests/artifacts/`prefix`-*.png.
pub(crate) fn chromium(s: &Server, script: &str, prefix: &str, pem: Option<&Path>, phase: &str, extra: Value) -> Value {
    let artifacts = workspace().join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let mut config = json!({
        "base": format!("https://{}", s.api), "shots": artifacts.join(prefix).display().to_string(), "phase": phase,
    });
    if let Some(pem) = pem {
        let (cert, key) = split(s, pem);
        config["cert"] = cert.display().to_string().into();
        config["key"] = key.display().to_string().into();
    }
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let file = s.scratch(&format!("{prefix}-{phase}.json"));
    std::fs::write(&file, config.to_string()).expect("config");
    let script = workspace().join("tests/py").join(script).display().to_string();
    let o = s.run("python3", &[&script, &file.display().to_string()]);
    assert!(o.status.success(), "Chromium ({prefix}, {phase}) failed: {}", text(&o));
    let result: Value = serde_json::from_slice(&o.stdout).expect("JSON from the walk");
    let pages = result["violations"].as_object().expect("axe results");
    assert!(!pages.is_empty(), "{phase}: axe looked at no page");
    for (page, found) in pages {
        assert_eq!(found.as_array().map(Vec::len), Some(0), "axe on {page} ({phase}): {found}");
    }
    result["out"].clone()
}

/// A phase of tests/py/scenarios.py.
fn walk(s: &Server, pem: Option<&Path>, phase: &str, extra: Value) -> Value {
    chromium(s, "scenarios.py", "scenario", pem, phase, extra)
}

/// Asserts that what the page said under `key` contains `words`.
pub(crate) fn says(out: &Value, key: &str, words: &str) {
    assert!(out[key].as_str().is_some_and(|t| t.contains(words)), "{key} should say {words:?}: {out}");
}

/// A PKCS#12 file opened with plain `openssl pkcs12`: its certificate and
/// key as one PEM file next to it.
pub(crate) fn open_p12(s: &Server, p12: &Path, password: &str) -> PathBuf {
    let pem = p12.with_extension("pem");
    let (input, output, pass) = (p12.display().to_string(), pem.display().to_string(), format!("pass:{password}"));
    let o = s.run("openssl", &["pkcs12", "-in", &input, "-passin", &pass, "-nodes", "-out", &output]);
    assert!(o.status.success(), "openssl pkcs12 could not open {input}: {}", text(&o));
    pem
}

/// What `openssl verify` says of `pem`'s certificate as a TLS client's,
/// chained to the root, on the server's clock.
pub(crate) fn openssl_verify(s: &Server, pem: &Path) -> String {
    let (root, issuing) = (s.data("ca/root.pem").display().to_string(), s.data("ca/issuing.pem").display().to_string());
    let o = s.run(
        "openssl",
        &["verify", "-CAfile", &root, "-untrusted", &issuing, "-purpose", "sslclient", &pem.display().to_string()],
    );
    text(&o)
}

/// The serial number of `pem`'s certificate, as `openssl x509` prints it.
pub(crate) fn serial_of(s: &Server, pem: &Path) -> String {
    let o = s.run("openssl", &["x509", "-in", &pem.display().to_string(), "-noout", "-serial"]);
    assert!(o.status.success(), "{}", text(&o));
    text(&o).trim().trim_start_matches("serial=").to_lowercase()
}
