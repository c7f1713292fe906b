//! Revocation that no race can undo (issue "Revocation that no race can
//! undo"): a release racing a revocation, a burst of revocations against the
//! served CRL, and three instances on one PostgreSQL database with SIGKILLs
//! in the middle of random traffic. Everything is checked from outside, as a
//! relying party would: `openssl ocsp`, `openssl crl`, Python
//! `cryptography`, curl's handshake, and the admin API for what the database
//! holds.
//!
//! Each test collects every problem it sees, prints a summary of what
//! happened (counts per outcome) and fails at the end with the list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use connect_pki_e2e::{Backend, Instance, Server, Sinks, both_backends, python_json, run, text};
use serde_json::{Value, json};

use connect_pki_e2e::fixtures::PASSWORD;
const HOOK_SECRET: &str = "hook secret";

mod crl_burst;
mod release_vs_revoke;
mod three_instances;

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A serial as hex without separators or leading zeros, lowercase: the form
/// the API, openssl and Python can all be compared in.
fn norm_serial(s: &str) -> String {
    let s: String = s.chars().filter(|c| *c != ':').collect::<String>().to_lowercase();
    let t = s.trim_start_matches('0');
    if t.is_empty() { "0".into() } else { t.to_string() }
}

/// `keyCompromise` → `key_compromise` (Python `cryptography`'s names).
fn snake(reason: &str) -> String {
    let mut out = String::new();
    for c in reason.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// What one curl call saw: exit code (0: a response came), HTTP status, body.
#[derive(Debug, Clone)]
struct Reply {
    code: i32,
    status: u16,
    body: Value,
}

impl Reply {
    /// `200`, `409 invalid_transition`, `curl 7` … for the outcome tables.
    fn key(&self) -> String {
        if self.code < 0 {
            return "no answer".into();
        }
        if self.code != 0 {
            return format!("curl {}", self.code);
        }
        match self.body["error"]["code"].as_str() {
            Some(e) => format!("{} {e}", self.status),
            None => self.status.to_string(),
        }
    }

    fn describe(&self) -> String {
        if self.code < 0 {
            format!("no answer: {}", self.body)
        } else if self.code != 0 {
            format!("curl exit {}: {}", self.code, self.body)
        } else {
            format!("{} {}", self.status, self.body)
        }
    }
}

/// curl and openssl against any instance's addresses, from any thread.
#[derive(Debug, Clone)]
struct Tools {
    dir: PathBuf,
    root: String,
    issuing: String,
    ocsp_signer: String,
}

static FILES: AtomicU64 = AtomicU64::new(0);

impl Tools {
    fn of(s: &Server) -> Self {
        Self {
            dir: s.dir.path().to_path_buf(),
            root: path(&s.data("ca/root.pem")),
            issuing: path(&s.data("ca/issuing.pem")),
            ocsp_signer: path(&s.data("ca/ocsp.pem")),
        }
    }

    /// A fresh file name in the scratch directory.
    fn file(&self, stem: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{stem}-{}.{ext}", FILES.fetch_add(1, Ordering::Relaxed)))
    }

    fn curl(&self, args: &[&str]) -> Reply {
        let mut all = vec!["-sS", "--max-time", "15", "-w", "\n%{http_code}"];
        all.extend_from_slice(args);
        let out = run("curl", &all, &self.dir);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
        let code = out.status.code().unwrap_or(-1);
        let body = if code == 0 { body.to_string() } else { format!("{body}{}", String::from_utf8_lossy(&out.stderr)) };
        let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
        Reply { code, status: status.trim().parse().unwrap_or(0), body }
    }

    /// A JSON call on the mTLS API at `api` as the holder of `pem`.
    fn api(&self, api: &str, method: &str, route: &str, pem: &Path, body: Option<&Value>) -> Reply {
        let url = format!("https://{api}{route}");
        let pem = path(pem);
        let body = body.map(Value::to_string);
        let mut args =
            vec!["--cacert", &self.root, "--cert", &pem, "-X", method, "-H", "content-type: application/json"];
        if let Some(b) = &body {
            args.extend(["--data-binary", b.as_str()]);
        }
        args.push(&url);
        self.curl(&args)
    }

    /// A JSON call to a public route (HTTPS without a client certificate) at `api`.
    fn open(&self, api: &str, method: &str, route: &str, body: Option<&Value>) -> Reply {
        let url = format!("https://{api}{route}");
        let body = body.map(Value::to_string);
        let mut args = vec!["--cacert", &self.root, "-X", method];
        if let Some(b) = &body {
            args.extend(["-H", "content-type: application/json", "--data-binary", b.as_str()]);
        }
        args.push(&url);
        self.curl(&args)
    }

    /// Whether a TLS handshake with `pem` at `api` gets a 200 from whoami.
    fn handshake(&self, api: &str, pem: &Path) -> Reply {
        self.api(api, "GET", "/api/v1/whoami", pem, None)
    }

    /// Downloads the served CRL (DER) into `out`.
    fn fetch_crl(&self, public: &str, out: &Path) -> Result<(), String> {
        let r = self.curl(&["-o", &path(out), &format!("http://{public}/crl/issuing.crl")]);
        if r.code == 0 && r.status == 200 {
            Ok(())
        } else {
            let _ = std::fs::remove_file(out);
            Err(r.describe())
        }
    }

    /// The CRL in `file` as `openssl crl -inform DER -text` reads it: its
    /// number and the (normalised) serials it lists.
    fn openssl_crl(&self, file: &Path) -> Result<(Option<u64>, BTreeSet<String>), String> {
        let o = run(
            "openssl",
            &["crl", "-inform", "DER", "-in", &path(file), "-CAfile", &self.issuing, "-noout", "-text"],
            &self.dir,
        );
        let out = text(&o);
        if !o.status.success() || !out.contains("verify OK") {
            return Err(format!("openssl crl: {out}"));
        }
        let mut serials = BTreeSet::new();
        let mut number = None;
        let mut lines = out.lines();
        while let Some(line) = lines.next() {
            let l = line.trim();
            if let Some(s) = l.strip_prefix("Serial Number:") {
                serials.insert(norm_serial(s.trim()));
            } else if l.starts_with("X509v3 CRL Number") {
                number = lines.next().and_then(|n| n.trim().parse().ok());
            }
        }
        Ok((number, serials))
    }

    /// `openssl ocsp` at `public` for every certificate in `pems` (several
    /// per request, with a nonce), after "Response verify OK": `good`,
    /// `revoked <reason>` or `unknown` per certificate, in order.
    fn ocsp(&self, public: &str, pems: &[PathBuf]) -> Result<Vec<String>, String> {
        let url = format!("http://{public}/ocsp");
        let mut out = Vec::new();
        for chunk in pems.chunks(50) {
            let names: Vec<String> = chunk.iter().map(|p| path(p)).collect();
            let mut args =
                vec!["ocsp", "-issuer", &self.issuing, "-url", &url, "-VAfile", &self.ocsp_signer, "-timeout", "15"];
            for n in &names {
                args.extend(["-cert", n.as_str()]);
            }
            let o = run("openssl", &args, &self.dir);
            let t = text(&o);
            if !o.status.success() || !t.contains("Response verify OK") {
                return Err(format!("openssl ocsp at {public}: {}", t.trim()));
            }
            let mut found: HashMap<&str, String> = HashMap::new();
            let mut current: Option<&str> = None;
            for line in t.lines() {
                if let Some(n) = names.iter().find(|n| line.starts_with(&format!("{n}: "))) {
                    let status = line[n.len() + 2..].trim().to_string();
                    found.insert(n.as_str(), status);
                    current = Some(n.as_str());
                } else if let (Some(reason), Some(c)) = (line.trim().strip_prefix("Reason:"), current) {
                    let entry = found.entry(c).or_default();
                    entry.push(' ');
                    entry.push_str(reason.trim());
                }
            }
            out.extend(names.iter().map(|n| found.get(n.as_str()).cloned().unwrap_or_else(|| "no answer".into())));
        }
        Ok(out)
    }

    /// A P-256 key and a CSR for `login` made with `openssl req`.
    fn csr(&self, login: &str) -> Result<(PathBuf, String), String> {
        let key = self.file("key", "pem");
        let csr = self.file("csr", "pem");
        let o = run(
            "openssl",
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &path(&key),
                "-subj",
                &format!("/CN={login}"),
                "-out",
                &path(&csr),
            ],
            &self.dir,
        );
        if !o.status.success() {
            return Err(text(&o));
        }
        Ok((key, std::fs::read_to_string(&csr).map_err(|e| e.to_string())?))
    }

    /// Certificate PEM from a response plus the key, in one file for curl.
    fn pem_with_key(&self, cert: &str, key: &Path) -> PathBuf {
        let pem = self.file("device", "pem");
        let key = std::fs::read_to_string(key).expect("key file");
        std::fs::write(&pem, format!("{cert}{key}")).expect("write pem");
        pem
    }
}

/// One device certificate the test holds (certificate and key in `pem`).
#[derive(Debug, Clone)]
struct Cert {
    serial: String,
    pem: PathBuf,
    device: i64,
}

/// A facility applied for and approved, and its manager's device.
fn facility_with_manager(s: &Server, admin: &Path, login: &str, name: &str, email: &str) -> (i64, PathBuf) {
    let application = json!({
        "name": name, "kind": "internal", "address": "千歳市", "department": null,
        "manager": {"name": "管理 太郎", "login_id": login, "email": email, "phone": "0123-00-0000"},
        "purpose_attested": true, "terms_version": "2026-04-01"});
    let (status, created) = s.public_api("POST", "/api/v1/applications", Some(&application));
    assert_eq!(status, 201, "{created}");
    let (_, approval) = s.api("POST", &format!("/api/v1/applications/{}/approve", created["id"]), Some(admin), None);
    let code = approval["enrollment_code"]["code"].as_str().unwrap_or_else(|| panic!("no code: {approval}"));
    let pem = s.enroll_generated(code, Some(PASSWORD), login);
    (approval["facility_id"].as_i64().expect("facility id"), pem)
}

/// A staff member registered in `facility` by `by`.
fn staff(s: &Server, by: &Path, facility: i64, login: &str) -> i64 {
    let body = json!({"display_name": login, "login_id": login, "email": format!("{login}@example.test")});
    let (status, user) = s.api("POST", &format!("/api/v1/facilities/{facility}/users"), Some(by), Some(&body));
    assert_eq!(status, 201, "{user}");
    user["id"].as_i64().expect("user id")
}

/// A device of `user` enrolled with an openssl CSR on a code issued by `by`;
/// `password` sets the account password (first enrollment only: it costs an argon2 hash).
fn enroll(s: &Server, t: &Tools, by: &Path, user: i64, login: &str, password: Option<&str>) -> Cert {
    let (status, code) = s.api("POST", &format!("/api/v1/users/{user}/enrollment-codes"), Some(by), None);
    assert_eq!(status, 201, "{code}");
    let (key, csr) = t.csr(login).expect("openssl req");
    let mut body = json!({"code": code["code"], "csr": csr});
    if let Some(p) = password {
        body["password"] = p.into();
    }
    let (status, out) = s.public_api("POST", "/api/v1/enroll", Some(&body));
    assert_eq!(status, 201, "enroll for {login}: {out}");
    Cert {
        serial: out["serial"].as_str().expect("serial").to_string(),
        pem: t.pem_with_key(out["certificate"].as_str().expect("certificate"), &key),
        device: out["device_id"].as_i64().expect("device id"),
    }
}

/// What the admin API says of a certificate: `valid`, `on_hold`,
/// `revoked keyCompromise`, `superseded superseded` …
fn db_state(t: &Tools, api: &str, admin: &Path, serial: &str) -> Result<(String, Option<String>), String> {
    let r = t.api(api, "GET", &format!("/api/v1/certificates/{serial}"), admin, None);
    if r.code != 0 || r.status != 200 {
        return Err(r.describe());
    }
    Ok((r.body["status"].as_str().unwrap_or("?").to_string(), r.body["reason"].as_str().map(str::to_string)))
}

/// The OCSP answer that matches a database state.
fn ocsp_for(status: &str, reason: Option<&str>) -> String {
    match status {
        "valid" => "good".into(),
        "on_hold" => "revoked certificateHold".into(),
        _ => format!("revoked {}", reason.unwrap_or("unspecified")),
    }
}

fn count(map: &mut BTreeMap<String, usize>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

fn table(map: &BTreeMap<String, usize>) -> String {
    map.iter().map(|(k, v)| format!("  {v:4} × {k}")).collect::<Vec<_>>().join("\n")
}

fn fail_with(test: &str, problems: &[String]) {
    if !problems.is_empty() {
        let shown: Vec<&String> = problems.iter().take(40).collect();
        panic!(
            "{test}: {} problem(s){}:\n  {}",
            problems.len(),
            if problems.len() > shown.len() { " (first 40)" } else { "" },
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
        );
    }
}

/// Fails with problems tagged `[group] …`: how many of each group, and the
/// first few of each, so one kind cannot hide the others.
fn fail_grouped(test: &str, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for p in problems {
        let (group, rest) = p.strip_prefix('[').and_then(|r| r.split_once("] ")).unwrap_or(("other", p.as_str()));
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, v)) => v.push(rest),
            None => groups.push((group, vec![rest])),
        }
    }
    let mut message = format!("{test}: {} problem(s)", problems.len());
    for (group, list) in &groups {
        message.push_str(&format!("\n{group}: {}{}", list.len(), if list.len() > 12 { " (first 12)" } else { "" }));
        for p in list.iter().take(12) {
            message.push_str(&format!("\n  {p}"));
        }
    }
    panic!("{message}");
}

/// Sends `requests` (see tests/py/race.py) at the same moment from threads
/// of one Python process, every connection opened beforehand.
fn race(t: &Tools, requests: Vec<Value>) -> Vec<Value> {
    race_try(t, requests).unwrap_or_else(|e| panic!("{e}"))
}

/// [`race`], returning what went wrong instead of panicking.
fn race_try(t: &Tools, requests: Vec<Value>) -> Result<Vec<Value>, String> {
    let spec = t.file("race", "json");
    std::fs::write(&spec, json!({"ca": t.root, "requests": requests}).to_string()).map_err(|e| e.to_string())?;
    let script = connect_pki_e2e::workspace().join("tests/py/race.py");
    let o = run("python3", &[&path(&script), &path(&spec)], &t.dir);
    let v: Value = serde_json::from_slice(&o.stdout).map_err(|e| format!("race.py ({e}): {}", text(&o)))?;
    v.as_array().cloned().ok_or_else(|| format!("race.py: {}", text(&o)))
}

/// A reply of race.py as a [`Reply`] (code -1 when no answer came).
fn reply_of(v: &Value) -> Reply {
    let status = v["status"].as_u64().unwrap_or(0) as u16;
    if status == 0 {
        return Reply { code: -1, status, body: v["error"].clone() };
    }
    Reply { code: 0, status, body: v["body"].clone() }
}
