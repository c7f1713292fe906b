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

const PASSWORD: &str = "correct horse battery";
const HOOK_SECRET: &str = "hook secret";

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
        let mut args = vec!["--cacert", &self.root, "--cert", &pem, "-X", method];
        if let Some(b) = &body {
            args.extend(["-H", "content-type: application/json", "--data-binary", b.as_str()]);
        }
        args.push(&url);
        self.curl(&args)
    }

    /// A JSON call on the public listener at `public`.
    fn public(&self, public: &str, method: &str, route: &str, body: Option<&Value>) -> Reply {
        let url = format!("http://{public}{route}");
        let body = body.map(Value::to_string);
        let mut args = vec!["-X", method];
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

// ---------------------------------------------------------------------------
// 1. Release against revoke
// ---------------------------------------------------------------------------

/// A staff member reports a lost device (hold + escalation), 行政管理課
/// claims the report, then at the same moment 行政管理課 resolves it as
/// *released* and the facility manager revokes the certificate
/// (keyCompromise). Whatever the order, a revoke answered 200 must leave the
/// certificate revoked — in the database, in OCSP and at our handshake — and
/// all three must agree. The two requests leave together (connections open
/// beforehand); from round to round one of them is held back by 0–3 ms so
/// that both orders and every overlap in between are tried.
async fn release_racing_revoke_never_undoes_the_revocation(backend: Backend) {
    const OFFSETS_MS: [f64; 8] = [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0];
    let started = Instant::now();
    let rounds = if backend == Backend::Postgres { 32 } else { 16 };
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let t = Tools::of(&s);
    let (facility, manager) = facility_with_manager(&s, &admin, "race.mgr", "レース施設", "race.mgr@example.test");
    let user = staff(&s, &manager, facility, "race.staff");
    let devices: Vec<Cert> =
        (0..rounds).map(|i| enroll(&s, &t, &manager, user, "race.staff", (i == 0).then_some(PASSWORD))).collect();
    let setup = started.elapsed();

    let mut outcomes = BTreeMap::new();
    let mut problems = Vec::new();
    for (round, d) in devices.iter().enumerate() {
        let report = json!({"login_id": "race.staff", "password": PASSWORD, "device_id": d.device});
        let r = t.public(&s.public, "POST", "/api/v1/emergency", Some(&report));
        assert_eq!(r.status, 201, "round {round}: emergency report: {}", r.describe());
        assert_eq!(r.body["held_serials"], json!([d.serial]), "round {round}: {}", r.describe());
        let id = r.body["escalation_id"].as_i64().expect("escalation id");
        let r = t.api(&s.api, "POST", &format!("/api/v1/escalations/{id}/claim"), &admin, None);
        assert_eq!(r.status, 200, "round {round}: claim: {}", r.describe());

        // Positive: the revoke leaves later; negative: the release does.
        let offset = OFFSETS_MS[round % OFFSETS_MS.len()];
        let answers = race(
            &t,
            vec![
                json!({"api": s.api, "cert": path(&admin), "method": "POST",
                       "path": format!("/api/v1/escalations/{id}/resolve"),
                       "body": json!({"outcome": "released", "note": "端末が見つかった"}).to_string(),
                       "delay_ms": (-offset).max(0.0)}),
                json!({"api": s.api, "cert": path(&manager), "method": "POST",
                       "path": format!("/api/v1/certificates/{}/revoke", d.serial),
                       "body": json!({"reason": "keyCompromise"}).to_string(),
                       "delay_ms": offset.max(0.0)}),
            ],
        );
        let (resolve, revoke) = (reply_of(&answers[0]), reply_of(&answers[1]));

        let db = db_state(&t, &s.api, &admin, &d.serial);
        let ocsp = t.ocsp(&s.public, std::slice::from_ref(&d.pem)).map(|v| v[0].clone());
        let hs = t.handshake(&s.api, &d.pem);
        let accepted = hs.code == 0 && hs.status == 200;
        let revoke_said = format!(
            "revoke {}{}",
            revoke.key(),
            revoke.body["status"]
                .as_str()
                .map_or(String::new(), |st| format!(" ({st}, changed={})", revoke.body["changed"]))
        );
        let resolve_said = format!(
            "resolve {}{}",
            resolve.key(),
            resolve.body["serials"].as_array().map_or(String::new(), |a| format!(" (released {})", a.len()))
        );
        let db_s = match &db {
            Ok((st, reason)) => format!("{st}{}", reason.as_ref().map_or(String::new(), |r| format!(" {r}"))),
            Err(e) => format!("GET failed: {e}"),
        };
        let ocsp_s = ocsp.clone().unwrap_or_else(|e| format!("error: {e}"));
        count(
            &mut outcomes,
            format!(
                "{revoke_said}, {resolve_said} → db {db_s}, OCSP {ocsp_s}, handshake {}",
                if accepted { "accepted" } else { "refused" }
            ),
        );

        let here = format!("round {round} (offset {offset} ms, serial {})", d.serial);
        for (what, r) in [("resolve", &resolve), ("revoke", &revoke)] {
            if r.code != 0 || r.status >= 500 {
                problems.push(format!("{here}: {what} answered {}", r.describe()));
            }
        }
        let Ok((status, reason)) = db else {
            problems.push(format!("{here}: the admin API cannot say what the database holds: {db_s}"));
            continue;
        };
        if revoke.code == 0 && revoke.status == 200 {
            if status != "revoked" {
                problems
                    .push(format!("{here}: revoke answered 200 but the certificate ended {status} in the database"));
            }
            if revoke.body["status"] != "revoked" {
                problems.push(format!("{here}: revoke answered 200 reporting status {}", revoke.body["status"]));
            }
            if !ocsp_s.starts_with("revoked") {
                problems.push(format!("{here}: revoke answered 200 but OCSP says {ocsp_s}"));
            }
        }
        let want = ocsp_for(&status, reason.as_deref());
        if ocsp_s != want {
            problems.push(format!("{here}: the database says {db_s} but OCSP says {ocsp_s}"));
        }
        if accepted != (status == "valid") {
            problems.push(format!(
                "{here}: the database says {db_s} but our handshake {}",
                if accepted { "accepts it".to_string() } else { format!("refuses it ({})", hs.key()) }
            ));
        }
    }
    eprintln!(
        "release racing revoke on {backend:?}: {rounds} rounds in {:.1} s (setup {:.1} s); outcomes:\n{}",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        table(&outcomes)
    );
    fail_with("release racing revoke", &problems);
}
both_backends!(release_racing_revoke_never_undoes_the_revocation);

// ---------------------------------------------------------------------------
// 2. A burst of revocations against the CRL
// ---------------------------------------------------------------------------

/// 24 revocations sent at once on one instance, five rounds. Right after
/// each 200, in the thread that sent it and on a connection already open,
/// `/crl/issuing.crl` is fetched from the public listener, then an OCSP
/// request (RFC 5019 style, no nonce) is posted, then a new handshake is
/// tried with the certificate. Afterwards `openssl crl -inform DER -text`
/// must find the certificate on that CRL, `openssl ocsp` must read that
/// response as revoked, and the handshake must have been refused.
async fn every_answered_revocation_is_on_the_crl_at_once(backend: Backend) {
    const AT_ONCE: usize = 24;
    const ROUNDS: usize = 5;
    let started = Instant::now();
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let t = Tools::of(&s);
    let mut outcomes = BTreeMap::new();
    let mut problems = Vec::new();
    let mut setup = Duration::ZERO;
    for round in 0..ROUNDS {
        let prepared = Instant::now();
        let login = format!("burst{round}");
        let user = staff(&s, &admin, 1, &login);
        let devices: Vec<Cert> =
            (0..AT_ONCE).map(|i| enroll(&s, &t, &admin, user, &login, (i == 0).then_some(PASSWORD))).collect();
        let mut requests = Vec::new();
        let mut files = Vec::new();
        for d in &devices {
            let (req, crl, resp) = (t.file("ocsp-req", "der"), t.file("crl", "der"), t.file("ocsp-resp", "der"));
            let o = run(
                "openssl",
                &["ocsp", "-issuer", &t.issuing, "-cert", &path(&d.pem), "-no_nonce", "-reqout", &path(&req)],
                &t.dir,
            );
            assert!(o.status.success(), "{}", text(&o));
            requests.push(json!({
                "api": s.api, "cert": path(&admin), "method": "POST",
                "path": format!("/api/v1/certificates/{}/revoke", d.serial),
                "body": json!({"reason": "keyCompromise"}).to_string(),
                "after": [
                    {"kind": "get", "public": s.public, "path": "/crl/issuing.crl", "out": path(&crl)},
                    {"kind": "post", "public": s.public, "path": "/ocsp", "content_type": "application/ocsp-request",
                     "body_file": path(&req), "out": path(&resp)},
                    {"kind": "whoami", "api": s.api, "cert": path(&d.pem)},
                ],
            }));
            files.push((crl, resp));
        }
        setup += prepared.elapsed();

        let answers = race(&t, requests);
        for ((d, answer), (crl, resp)) in devices.iter().zip(&answers).zip(&files) {
            let r = reply_of(answer);
            if r.code != 0 || r.status != 200 {
                problems.push(format!("round {round}: revoke of {} answered {}", d.serial, r.describe()));
                count(&mut outcomes, format!("round {round}: revoke {}", r.key()));
                continue;
            }
            let steps = &answer["after"];
            let on_crl = match t.openssl_crl(crl) {
                Ok((number, serials)) => {
                    let listed = serials.contains(&norm_serial(&d.serial));
                    if !listed {
                        problems.push(format!(
                            "round {round}: revoke of {} answered 200 but the CRL fetched right after it (number {}) does not list it",
                            d.serial,
                            number.map_or("?".into(), |n| n.to_string())
                        ));
                    }
                    if listed { "on the CRL" } else { "NOT on the CRL" }
                }
                Err(e) => {
                    problems.push(format!("round {round}: CRL after revoking {}: {} {e}", d.serial, steps[0]));
                    "CRL unreadable"
                }
            };
            let o = run(
                "openssl",
                &[
                    "ocsp",
                    "-respin",
                    &path(resp),
                    "-issuer",
                    &t.issuing,
                    "-cert",
                    &path(&d.pem),
                    "-VAfile",
                    &t.ocsp_signer,
                    "-no_nonce",
                ],
                &t.dir,
            );
            let out = text(&o);
            let ocsp = if !out.contains("Response verify OK") {
                format!("unreadable ({})", steps[1])
            } else if out.contains(": revoked") {
                "revoked".to_string()
            } else {
                out.lines().find(|l| l.starts_with(&path(&d.pem))).map_or("?".into(), |l| l.to_string())
            };
            if ocsp != "revoked" || !out.contains("keyCompromise") {
                problems.push(format!(
                    "round {round}: revoke of {} answered 200 but OCSP right after it said {ocsp}",
                    d.serial
                ));
            }
            let accepted = steps[2]["accepted"] == true;
            if accepted {
                problems.push(format!(
                    "round {round}: revoke of {} answered 200 but a handshake right after it was accepted",
                    d.serial
                ));
            }
            count(
                &mut outcomes,
                format!(
                    "round {round}: revoke 200, {on_crl}, OCSP {ocsp}, handshake {}",
                    if accepted { "accepted" } else { "refused" }
                ),
            );
        }
    }
    eprintln!(
        "burst of revocations on {backend:?}: {} calls ({ROUNDS} rounds of {AT_ONCE}) in {:.1} s (setup {:.1} s); outcomes:\n{}",
        ROUNDS * AT_ONCE,
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        table(&outcomes)
    );
    fail_with("burst of revocations", &problems);
}
both_backends!(every_answered_revocation_is_on_the_crl_at_once);

// ---------------------------------------------------------------------------
// 3. Three instances, random traffic, SIGKILLs
// ---------------------------------------------------------------------------

/// xorshift64*: enough randomness for choosing operations, and a seed that
/// can be given back (`RACES_SEED`) to replay the same choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

fn seed() -> u64 {
    std::env::var("RACES_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    })
}

#[derive(Debug, Clone)]
struct Endpoint {
    name: String,
    public: String,
    api: String,
}

impl Endpoint {
    fn of(i: &Instance) -> Self {
        Self { name: i.name.clone(), public: i.public.clone(), api: i.api.clone() }
    }
}

/// The instances' current addresses; `None` while one is down.
struct Endpoints(Mutex<Vec<Option<Endpoint>>>);

impl Endpoints {
    fn pick(&self, rng: &mut Rng) -> Option<Endpoint> {
        let up: Vec<Endpoint> = self.0.lock().expect("endpoints").iter().flatten().cloned().collect();
        (!up.is_empty()).then(|| up[rng.below(up.len())].clone())
    }
}

#[derive(Debug)]
struct StaffUser {
    id: i64,
    login: String,
    retired: bool,
}

#[derive(Debug)]
struct DeviceM {
    id: i64,
    user: usize,
    /// Index in `certs` of its newest certificate.
    current: usize,
}

/// What the clients know: people, devices, every certificate ever handed
/// out to them, and escalations by state. The service decides; this only
/// steers the random choices.
#[derive(Debug, Default)]
struct Model {
    users: Vec<StaffUser>,
    devices: Vec<DeviceM>,
    certs: Vec<Cert>,
    open: Vec<Escalation>,
    claimed: Vec<Escalation>,
}

/// An emergency report the clients know of, and the serials it put on hold.
#[derive(Debug, Clone)]
struct Escalation {
    id: i64,
    held: Vec<String>,
}

/// What a 2xx answer promised about a certificate for good: `revoked` (a
/// revocation is never undone) or `superseded` (by a renewal).
#[derive(Debug, Clone)]
struct Promise {
    serial: String,
    status: &'static str,
    by: String,
}

impl Model {
    fn add_cert(&mut self, user: usize, c: Cert) {
        let idx = self.certs.len();
        match self.devices.iter_mut().find(|d| d.id == c.device) {
            Some(d) => d.current = idx,
            None => self.devices.push(DeviceM { id: c.device, user, current: idx }),
        }
        self.certs.push(c);
    }

    /// A device, mostly of someone not retired.
    fn device(&self, rng: &mut Rng) -> Option<&DeviceM> {
        let live: Vec<&DeviceM> = self.devices.iter().filter(|d| !self.users[d.user].retired).collect();
        if !live.is_empty() && rng.below(5) != 0 {
            return Some(live[rng.below(live.len())]);
        }
        self.devices.get(rng.below(self.devices.len()))
    }
}

/// What a revoke answered 200 promises: revoked for good — or superseded,
/// when the certificate had been renewed before (revoking it changes nothing).
fn final_state(revoke: &Reply) -> &'static str {
    if revoke.body["status"] == "superseded" { "superseded" } else { "revoked" }
}

struct Actors {
    admin: PathBuf,
    manager: PathBuf,
}

/// One random operation against a random live instance; returns its outcome
/// for the summary (`revoke 200`, `renew 409 invalid_transition`, `hold curl 7` …).
fn chaos_op(
    t: &Tools,
    eps: &Endpoints,
    model: &Mutex<Model>,
    who: &Actors,
    promises: &Mutex<Vec<Promise>>,
    rng: &mut Rng,
) -> String {
    let promise = |serials: &Value, status: &'static str, by: String| {
        let mut p = promises.lock().expect("promises");
        for serial in serials.as_array().into_iter().flatten().filter_map(Value::as_str) {
            p.push(Promise { serial: serial.to_string(), status, by: by.clone() });
        }
    };
    let Some(ep) = eps.pick(rng) else {
        std::thread::sleep(Duration::from_millis(50));
        return "no instance up".into();
    };
    let actor = if rng.below(2) == 0 { &who.admin } else { &who.manager };
    let mut op = rng.below(100);
    {
        // Nothing to resolve: claim instead; nothing to claim: report instead.
        let m = model.lock().expect("model");
        if op >= 90 && m.claimed.is_empty() {
            op = 80;
        }
        if (80..90).contains(&op) && m.open.is_empty() {
            op = 68;
        }
    }
    let target = {
        let m = model.lock().expect("model");
        m.device(rng)
            .map(|d| (d.id, d.user, m.certs[d.current].clone(), m.users[d.user].id, m.users[d.user].login.clone()))
    };
    let Some((device, user_idx, cert, user_id, login)) = target else { return "nothing to do".into() };
    match op {
        0..=13 => {
            let reason = ["keyCompromise", "affiliationChanged", "cessationOfOperation", "keyCompromise"][rng.below(4)];
            let r = t.api(
                &ep.api,
                "POST",
                &format!("/api/v1/certificates/{}/revoke", cert.serial),
                actor,
                Some(&json!({"reason": reason})),
            );
            if r.code == 0 && r.status == 200 {
                promise(&json!([cert.serial]), final_state(&r), format!("revoke ({reason}) answered {}", r.body));
            }
            format!("revoke {}", r.key())
        }
        14..=25 => {
            let r = t.api(&ep.api, "POST", &format!("/api/v1/certificates/{}/hold", cert.serial), actor, None);
            format!("hold {}", r.key())
        }
        26..=37 => {
            let r = t.api(&ep.api, "POST", &format!("/api/v1/certificates/{}/release", cert.serial), actor, None);
            format!("release {}", r.key())
        }
        38..=42 => {
            let r = t.api(&ep.api, "POST", &format!("/api/v1/devices/{device}/lost"), actor, None);
            if r.code == 0 && r.status == 200 {
                promise(&r.body["revoked_serials"], "revoked", format!("lost device {device}"));
            }
            format!("lost {}", r.key())
        }
        43..=45 => {
            {
                let m = model.lock().expect("model");
                if m.users.iter().filter(|u| u.retired).count() * 3 >= m.users.len() {
                    return "retire skipped (a third already retired)".into();
                }
            }
            let r = t.api(&ep.api, "POST", &format!("/api/v1/users/{user_id}/retire"), actor, None);
            if r.code == 0 && r.status == 200 {
                model.lock().expect("model").users[user_idx].retired = true;
                promise(&r.body["revoked_serials"], "revoked", format!("retirement of user {user_id}"));
            }
            format!("retire {}", r.key())
        }
        46..=57 => {
            let Ok((key, csr)) = t.csr(&login) else { return "renew: openssl req failed".into() };
            let r = t.api(&ep.api, "POST", "/api/v1/certificates/renew", &cert.pem, Some(&json!({"csr": csr})));
            if r.code == 0 && r.status == 201 {
                let c = Cert {
                    serial: r.body["serial"].as_str().unwrap_or_default().to_string(),
                    pem: t.pem_with_key(r.body["certificate"].as_str().unwrap_or_default(), &key),
                    device: r.body["device_id"].as_i64().unwrap_or(device),
                };
                promise(&json!([cert.serial]), "superseded", format!("renewal to {}", c.serial));
                model.lock().expect("model").add_cert(user_idx, c);
            }
            format!("renew {}", r.key())
        }
        58..=67 => {
            let r = t.api(&ep.api, "POST", &format!("/api/v1/users/{user_id}/enrollment-codes"), actor, None);
            if r.code != 0 || r.status != 201 {
                return format!("enrollment code {}", r.key());
            }
            let Ok((key, csr)) = t.csr(&login) else { return "enroll: openssl req failed".into() };
            // Redeemed at another (random) instance than the one that issued the code.
            let Some(ep2) = eps.pick(rng) else { return "enroll: no instance up".into() };
            let e = t.public(&ep2.public, "POST", "/api/v1/enroll", Some(&json!({"code": r.body["code"], "csr": csr})));
            if e.code == 0 && e.status == 201 {
                let c = Cert {
                    serial: e.body["serial"].as_str().unwrap_or_default().to_string(),
                    pem: t.pem_with_key(e.body["certificate"].as_str().unwrap_or_default(), &key),
                    device: e.body["device_id"].as_i64().unwrap_or_default(),
                };
                model.lock().expect("model").add_cert(user_idx, c);
            }
            format!("enroll {}", e.key())
        }
        68..=79 => {
            let body = json!({"login_id": login, "password": PASSWORD, "device_id": device});
            let r = t.public(&ep.public, "POST", "/api/v1/emergency", Some(&body));
            if let Some(id) = r.body["escalation_id"].as_i64().filter(|_| r.status == 201) {
                let held = r.body["held_serials"].as_array().into_iter().flatten();
                let held = held.filter_map(Value::as_str).map(str::to_string).collect();
                model.lock().expect("model").open.push(Escalation { id, held });
            }
            format!("emergency report {}", r.key())
        }
        80..=89 => {
            let e = {
                let mut m = model.lock().expect("model");
                if m.open.is_empty() {
                    return "claim: none open".into();
                }
                let i = rng.below(m.open.len());
                m.open.swap_remove(i)
            };
            let r = t.api(&ep.api, "POST", &format!("/api/v1/escalations/{}/claim", e.id), &who.admin, None);
            let claimed = r.status == 200
                || r.body["error"]["message"].as_str().is_some_and(|m| m.contains("already claimed by user 1"));
            let mut m = model.lock().expect("model");
            if claimed {
                m.claimed.push(e);
            } else if r.code != 0 {
                m.open.push(e);
            }
            format!("claim {}", r.key())
        }
        _ => {
            let e = {
                let mut m = model.lock().expect("model");
                if m.claimed.is_empty() {
                    return "resolve: none claimed".into();
                }
                let i = rng.below(m.claimed.len());
                m.claimed.swap_remove(i)
            };
            let outcome = ["released", "released", "revoked", "rejected"][rng.below(4)];
            let route = format!("/api/v1/escalations/{}/resolve", e.id);
            let body = json!({"outcome": outcome, "note": "確認済み"});
            let ep2 = eps.pick(rng);
            let (r, raced) = match (outcome, e.held.first(), ep2) {
                // Half the releases race a revocation of the held certificate
                // sent at the same moment (see tests/py/race.py), often to
                // another instance.
                ("released", Some(serial), Some(ep2)) if rng.below(2) == 0 => {
                    let answers = race_try(
                        t,
                        vec![
                            json!({"api": ep.api, "cert": path(&who.admin), "method": "POST", "path": route,
                                   "body": body.to_string(), "delay_ms": rng.below(3) as f64 * 0.5}),
                            json!({"api": ep2.api, "cert": path(actor), "method": "POST",
                                   "path": format!("/api/v1/certificates/{serial}/revoke"),
                                   "body": json!({"reason": "keyCompromise"}).to_string(),
                                   "delay_ms": rng.below(3) as f64 * 0.5}),
                        ],
                    );
                    match answers {
                        Ok(a) => {
                            let revoke = reply_of(&a[1]);
                            if revoke.code == 0 && revoke.status == 200 {
                                promise(
                                    &json!([serial]),
                                    final_state(&revoke),
                                    format!("revoke racing a release answered {}", revoke.body),
                                );
                            }
                            (reply_of(&a[0]), format!(" racing revoke {}", revoke.key()))
                        }
                        Err(err) => (Reply { code: -1, status: 0, body: Value::String(err) }, " racing revoke".into()),
                    }
                }
                _ => (t.api(&ep.api, "POST", &route, &who.admin, Some(&body)), String::new()),
            };
            if r.code == 0 && r.status == 200 && outcome == "revoked" {
                promise(&r.body["serials"], "revoked", format!("escalation {} resolved as revoked", e.id));
            }
            if r.code != 0 {
                model.lock().expect("model").claimed.push(e);
            }
            format!("resolve {outcome} {}{raced}", r.key())
        }
    }
}

/// One check of every instance against the database: OCSP and the served
/// CRL for every certificate (and every serial any CRL lists; those no
/// client knows of are looked up and added to `truth`). Returns the
/// disagreements.
fn compare_with_database(
    t: &Tools,
    eps: &[Endpoint],
    admin: &Path,
    certs: &[Cert],
    truth: &mut HashMap<String, (String, Option<String>)>,
    crl_dir: &Path,
    pass: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let pems: Vec<PathBuf> = certs.iter().map(|c| c.pem.clone()).collect();
    for ep in eps {
        let name = &ep.name;
        match t.ocsp(&ep.public, &pems) {
            Ok(answers) => {
                for (c, got) in certs.iter().zip(answers) {
                    let (status, reason) = &truth[&norm_serial(&c.serial)];
                    let want = ocsp_for(status, reason.as_deref());
                    if got != want {
                        problems.push(format!("{name}: OCSP says {got} for {} but the database says {want}", c.serial));
                    }
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
        let file = crl_dir.join(format!("final-{pass:03}-{name}.der"));
        if let Err(e) = t.fetch_crl(&ep.public, &file) {
            problems.push(format!("{name}: CRL: {e}"));
        }
    }
    // The CRLs just fetched, read by Python cryptography.
    let facts = python_json("crl_series.py", &[&path(crl_dir), &t.issuing], &t.dir);
    for name in eps.iter().map(|e| &e.name) {
        let Some(crl) = facts.get(format!("final-{pass:03}-{name}.der")) else { continue };
        if crl["signature_valid"] != true {
            problems.push(format!("{name}: the CRL does not verify: {crl}"));
            continue;
        }
        let listed: HashMap<String, Option<String>> = crl["revoked"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (norm_serial(k), v.as_str().map(str::to_string))).collect())
            .unwrap_or_default();
        for serial in listed.keys() {
            if !truth.contains_key(serial) {
                // Issued by a call whose answer was lost to a SIGKILL: ask the database.
                match db_state(t, &eps[0].api, admin, serial) {
                    Ok(state) => {
                        truth.insert(serial.clone(), state);
                    }
                    Err(e) => problems.push(format!("{name}: the CRL lists {serial}, the admin API: {e}")),
                }
            }
        }
        for (serial, (status, reason)) in truth.iter() {
            let want = match status.as_str() {
                "valid" => None,
                "on_hold" => Some("certificate_hold".to_string()),
                _ => Some(snake(reason.as_deref().unwrap_or("unspecified"))),
            };
            let got = listed.get(serial).map(|r| r.clone().unwrap_or_else(|| "unspecified".into()));
            if got != want {
                problems.push(format!(
                    "{name}: CRL number {} {} {serial} but the database says {status}{}",
                    crl["crl_number"],
                    got.map_or("does not list".to_string(), |r| format!("lists ({r})")),
                    reason.as_ref().map_or(String::new(), |r| format!(" {r}"))
                ));
            }
        }
    }
    problems
}

/// Every instance's handshake decision for every certificate against the
/// database (one thread per instance).
fn compare_handshakes(
    t: &Tools,
    eps: &[Endpoint],
    certs: &[Cert],
    truth: &HashMap<String, (String, Option<String>)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = eps
            .iter()
            .map(|ep| {
                let name = &ep.name;
                scope.spawn(move || {
                    let mut p = Vec::new();
                    for c in certs {
                        let (status, _) = &truth[&norm_serial(&c.serial)];
                        let r = t.handshake(&ep.api, &c.pem);
                        let accepted = r.code == 0 && r.status == 200;
                        if accepted != (status == "valid") {
                            p.push(format!(
                                "{name}: the handshake {} {} but the database says {status}",
                                if accepted { "accepts".to_string() } else { format!("refuses ({})", r.key()) },
                                c.serial
                            ));
                        }
                    }
                    p
                })
            })
            .collect();
        for h in handles {
            problems.extend(h.join().expect("handshake thread"));
        }
    });
    problems
}

/// Three instances on one PostgreSQL database; client threads send random
/// revocations, holds, releases, lost devices, retirements, renewals,
/// enrollments and emergency reports (claimed and resolved) to random
/// instances, while one instance at a time is SIGKILLed and restarted. When
/// it is over, every instance must agree with the database for every
/// certificate (handshake, OCSP, CRL); no CRL may drop a permanent entry a
/// lower-numbered one listed; every notification reached the webhook and
/// the mailboxes exactly once; no instance logged a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_with_sigkills_agree_with_the_database() {
    const CHAOS: Duration = Duration::from_secs(20);
    const CLIENTS: usize = 4;
    const MAX_KILLS: usize = 4;
    const STAFF: usize = 10;
    let started = Instant::now();
    let seed = seed();
    eprintln!("three instances: seed {seed} (RACES_SEED={seed} replays the choices)");
    let env = [("CONNECT_PKI_WEBHOOK_SECRET", HOOK_SECRET)];
    let mut s = Server::start_with(Backend::Postgres, &env).await;
    let admin = s.admin_pem();
    let t = Tools::of(&s);
    let sinks = Sinks::start(&s, HOOK_SECRET);
    let (facility, manager) =
        facility_with_manager(&s, &admin, "chaos.mgr", "多重化テスト施設", "manager@facility.example");
    let mut model = Model::default();
    for i in 0..STAFF {
        let login = format!("chaos{i:02}");
        let id = staff(&s, &manager, facility, &login);
        let c = enroll(&s, &t, &manager, id, &login, Some(PASSWORD));
        model.users.push(StaffUser { id, login, retired: false });
        model.add_cert(i, c);
    }
    sinks.configure(&s);
    s.stop();

    let mut instances: Vec<Instance> = ["a", "b", "c"].iter().map(|n| s.instance(n, &env)).collect();
    for i in &mut instances {
        i.start(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}:\n{}", i.log()));
    }
    let eps = Endpoints(Mutex::new(instances.iter().map(|i| Some(Endpoint::of(i))).collect()));
    let instances = Mutex::new(instances);
    let model = Mutex::new(model);
    let who = Actors { admin: admin.clone(), manager: manager.clone() };
    let setup = started.elapsed();

    let crl_dir = s.scratch("crls");
    std::fs::create_dir_all(&crl_dir).expect("crl dir");
    let outcomes = Mutex::new(BTreeMap::<String, usize>::new());
    let promises = Mutex::new(Vec::<Promise>::new());
    let mut problems: Vec<String> = Vec::new();
    let kills = Mutex::new(Vec::<String>::new());
    let last_kill = Mutex::new(None::<Instant>);
    let restart_problems = Mutex::new(Vec::<String>::new());
    let polled = AtomicU64::new(0);
    let chaos_started = Instant::now();
    let deadline = chaos_started + CHAOS;
    std::thread::scope(|scope| {
        for n in 0..CLIENTS {
            let (t, eps, model, who, outcomes, promises) = (&t, &eps, &model, &who, &outcomes, &promises);
            scope.spawn(move || {
                let mut rng = Rng(seed.wrapping_add((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
                while Instant::now() < deadline {
                    let key = chaos_op(t, eps, model, who, promises, &mut rng);
                    count(&mut outcomes.lock().expect("outcomes"), key);
                }
            });
        }
        // The killer: one instance at a time, at random moments.
        {
            let (eps, instances, kills, restart_problems, last_kill) =
                (&eps, &instances, &kills, &restart_problems, &last_kill);
            scope.spawn(move || {
                let mut rng = Rng(seed ^ 0xDEAD_BEEF);
                for _ in 0..MAX_KILLS {
                    std::thread::sleep(rng.millis(1500, 3000));
                    // Kills only in the first 60 % of the traffic, so that
                    // what they interrupted can settle before the end.
                    if chaos_started.elapsed() > CHAOS * 6 / 10 {
                        break;
                    }
                    let victim = rng.below(3);
                    eps.0.lock().expect("endpoints")[victim] = None;
                    let mut all = instances.lock().expect("instances");
                    let i = &mut all[victim];
                    let at = chaos_started.elapsed().as_secs_f64();
                    i.kill();
                    *last_kill.lock().expect("last kill") = Some(Instant::now());
                    std::thread::sleep(rng.millis(200, 800));
                    match i.start(Duration::from_secs(60)) {
                        Ok(()) => {
                            kills.lock().expect("kills").push(format!("{} at {at:.1} s", i.name));
                            eps.0.lock().expect("endpoints")[victim] = Some(Endpoint::of(i));
                        }
                        Err(e) => {
                            restart_problems.lock().expect("problems").push(format!("restart after SIGKILL: {e}"))
                        }
                    }
                }
            });
        }
        // The CRL poller: every instance's CRL, over and over, kept for later.
        {
            let (t, eps, crl_dir, polled) = (&t, &eps, &crl_dir, &polled);
            scope.spawn(move || {
                while Instant::now() < deadline {
                    let current: Vec<Option<Endpoint>> = eps.0.lock().expect("endpoints").clone();
                    for ep in current.iter().flatten() {
                        let name = &ep.name;
                        let n = polled.fetch_add(1, Ordering::Relaxed);
                        let _ = t.fetch_crl(&ep.public, &crl_dir.join(format!("run-{n:05}-{name}.der")));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        }
    });
    let chaos_took = chaos_started.elapsed();
    let traffic_over = Instant::now();
    problems.extend(restart_problems.into_inner().expect("problems").into_iter().map(|p| format!("[restarts] {p}")));

    // Every instance up again (one whose restart failed gets another try).
    let mut instances = instances.into_inner().expect("instances");
    for i in &mut instances {
        if !i.running()
            && let Err(e) = i.start(Duration::from_secs(60))
        {
            problems.push(format!("[restarts] {e}"));
        }
    }
    let eps: Vec<Endpoint> = instances.iter().map(Endpoint::of).collect();
    let model = model.into_inner().expect("model");

    // What the database holds, through the admin API.
    let mut truth: HashMap<String, (String, Option<String>)> = HashMap::new();
    for c in &model.certs {
        match db_state(&t, &eps[0].api, &admin, &c.serial) {
            Ok(state) => {
                truth.insert(norm_serial(&c.serial), state);
            }
            Err(e) => problems.push(format!(
                "[instances vs database] certificate {} was handed out but the admin API says {e}",
                c.serial
            )),
        }
    }
    let certs: Vec<Cert> =
        model.certs.iter().filter(|c| truth.contains_key(&norm_serial(&c.serial))).cloned().collect();

    // Let the instances catch up (bounded), then hold them to the database.
    let catch_up = Instant::now();
    let mut pass = 0;
    let disagreements = loop {
        let mut found = compare_with_database(&t, &eps, &admin, &certs, &mut truth, &crl_dir, pass);
        pass += 1;
        let last = catch_up.elapsed() > Duration::from_secs(20);
        // Handshakes (the slow part) once OCSP and the CRLs agree, or at the end.
        if found.is_empty() || last {
            found.extend(compare_handshakes(&t, &eps, &certs, &truth));
        }
        if found.is_empty() || last {
            break found;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let caught_up = catch_up.elapsed();
    problems.extend(disagreements.into_iter().map(|p| format!("[instances vs database] {p}")));

    // What the answers promised: a certificate answered as revoked (or
    // superseded by a renewal) is so in the database at the end.
    let promises = promises.into_inner().expect("promises");
    for p in &promises {
        let key = norm_serial(&p.serial);
        if !truth.contains_key(&key) {
            match db_state(&t, &eps[0].api, &admin, &p.serial) {
                Ok(state) => {
                    truth.insert(key.clone(), state);
                }
                Err(e) => {
                    problems.push(format!("[answers vs database] {} ({}): the admin API says {e}", p.serial, p.by));
                    continue;
                }
            }
        }
        let (status, reason) = &truth[&key];
        if status != p.status {
            problems.push(format!(
                "[answers vs database] {} ended {status}{} although {}",
                p.serial,
                reason.as_ref().map_or(String::new(), |r| format!(" {r}")),
                p.by
            ));
        }
    }

    // CRLs over time: a higher number never leaves out a permanent entry
    // (anything but certificateHold) that a lower number listed, nor changes
    // its reason. (Certificates here live a year: none expires.)
    let facts = python_json("crl_series.py", &[&path(&crl_dir), &t.issuing], &t.dir);
    let mut series: Vec<(i64, String, BTreeMap<String, String>)> = Vec::new();
    for (file, f) in facts.as_object().expect("crl_series.py prints an object") {
        if let Some(e) = f.get("error") {
            problems.push(format!("[CRLs over time] CRL {file} is unreadable: {e}"));
            continue;
        }
        if f["signature_valid"] != true {
            problems.push(format!("[CRLs over time] CRL {file} does not verify"));
        }
        let revoked = f["revoked"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (norm_serial(k), v.as_str().unwrap_or("unspecified").to_string())).collect())
            .unwrap_or_default();
        series.push((f["crl_number"].as_i64().unwrap_or(-1), file.clone(), revoked));
    }
    series.sort();
    let mut permanent: BTreeMap<String, (String, i64, String)> = BTreeMap::new();
    let mut by_number: BTreeMap<i64, (String, &BTreeMap<String, String>)> = BTreeMap::new();
    // serial → (CRLs that went backwards on it, the first of them, numbers seen).
    let mut backwards: BTreeMap<String, (usize, String, BTreeSet<i64>)> = BTreeMap::new();
    let mut i = 0;
    while i < series.len() {
        let number = series[i].0;
        let group: Vec<&(i64, String, BTreeMap<String, String>)> =
            series[i..].iter().take_while(|c| c.0 == number).collect();
        for (_, file, revoked) in &group {
            if let Some((first, entries)) = by_number.get(&number) {
                if *entries != revoked {
                    problems.push(format!(
                        "[CRLs over time] CRL number {number} was served with two contents ({first} and {file})"
                    ));
                }
            } else {
                by_number.insert(number, (file.clone(), revoked));
            }
            for (serial, (reason, seen_in, seen_file)) in &permanent {
                match revoked.get(serial) {
                    Some(r) if r == reason => {}
                    other => {
                        let first = || {
                            format!(
                                "CRL number {number} ({file}) {} {serial}, which CRL number {seen_in} ({seen_file}) listed as {reason}",
                                other.map_or("leaves out".to_string(), |r| format!("lists as {r}"))
                            )
                        };
                        let e = backwards.entry(serial.clone()).or_insert_with(|| (0, first(), BTreeSet::new()));
                        e.0 += 1;
                        e.2.insert(number);
                    }
                }
            }
        }
        for (_, file, revoked) in &group {
            for (serial, reason) in revoked.iter() {
                if reason != "certificate_hold" {
                    permanent.entry(serial.clone()).or_insert((reason.clone(), number, file.clone()));
                }
            }
        }
        i += group.len();
    }
    for (count, first, numbers) in backwards.values() {
        problems.push(format!(
            "[CRLs over time] {first}; {count} fetched CRL(s) went backwards on it (numbers {}–{})",
            numbers.first().unwrap_or(&0),
            numbers.last().unwrap_or(&0)
        ));
    }

    // Notifications: wait (bounded) until none is pending, then each one
    // delivered must have arrived exactly once.
    let r = t.api(&eps[0].api, "GET", "/api/v1/escalations?status=all", &admin, None);
    let escalations: Vec<i64> =
        r.body.as_array().map(|a| a.iter().filter_map(|e| e["id"].as_i64()).collect()).unwrap_or_default();
    if r.status != 200 {
        problems.push(format!("[notifications] listing escalations: {}", r.describe()));
    }
    // A notification that a killed instance had taken for delivery is taken
    // over by another only when the dead one's claim on it runs out (a 30 s
    // lease in the server today): wait up to 45 s after the last SIGKILL,
    // and at least 30 s after the traffic.
    let wait_until = [
        last_kill.lock().expect("last kill").map(|k| k + Duration::from_secs(45)),
        Some(Instant::now() + Duration::from_secs(30)),
    ]
    .into_iter()
    .flatten()
    .max()
    .expect("a deadline");
    let deliveries: Vec<(i64, Value)> = loop {
        let mut all = Vec::new();
        for id in &escalations {
            let r = t.api(&eps[0].api, "GET", &format!("/api/v1/escalations/{id}/notifications"), &admin, None);
            for n in r.body.as_array().cloned().unwrap_or_default() {
                all.push((*id, n));
            }
        }
        let pending = all.iter().filter(|(_, n)| n["status"] == "pending").count();
        if pending == 0 || Instant::now() > wait_until {
            break all;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let notifications_settled = traffic_over.elapsed();
    let mut expected: BTreeMap<(i64, String, String), String> = BTreeMap::new();
    for (id, n) in &deliveries {
        let target = if n["channel"] == "webhook" {
            "webhook".to_string()
        } else {
            n["target"].as_str().unwrap_or("").to_string()
        };
        expected.insert(
            (*id, n["event"].as_str().unwrap_or("").to_string(), target),
            n["status"].as_str().unwrap_or("").to_string(),
        );
    }
    let mut received: BTreeMap<(i64, String, String), usize> = BTreeMap::new();
    for e in sinks.entries() {
        if e["kind"] == "webhook" {
            if e["signature_valid"] != true {
                problems.push(format!("[notifications] webhook call with a bad signature: {e}"));
            }
            if e["answered"] != 200 {
                continue; // the sink's deliberate first 500
            }
            let key = (
                e["body"]["escalation_id"].as_i64().unwrap_or(-1),
                e["event"].as_str().unwrap_or("").to_string(),
                "webhook".to_string(),
            );
            *received.entry(key).or_default() += 1;
        } else {
            let subject = e["subject"].as_str().unwrap_or("");
            let id = subject
                .split("受付 ")
                .nth(1)
                .and_then(|r| r.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok())
                .unwrap_or(-1);
            let event = if subject.contains("行政管理課に回されました") { "escalated" } else { "opened" };
            for to in e["to"].as_array().cloned().unwrap_or_default() {
                let key = (id, event.to_string(), to.as_str().unwrap_or("").to_string());
                *received.entry(key).or_default() += 1;
            }
        }
    }
    // Exactly once, except where a SIGKILL fell between a send and its
    // record: each instance sends one notification at a time, so each kill
    // can repeat at most one (delivery is at least once across a crash).
    let mut notes = BTreeMap::new();
    let mut repeated = Vec::new();
    for (key, status) in &expected {
        let got = received.get(key).copied().unwrap_or(0);
        count(&mut notes, format!("{status}, received {got}×"));
        if status == "delivered" && got == 2 {
            repeated.push(key.clone());
        } else if status == "delivered" && got != 1 {
            problems
                .push(format!("[notifications] notification {key:?} is delivered in the log and arrived {got} times"));
        } else if status != "delivered" && got > 0 {
            problems
                .push(format!("[notifications] notification {key:?} is {status} in the log and arrived {got} times"));
        } else if status == "pending" {
            problems.push(format!(
                "[notifications] notification {key:?} still pending {:.0} s after the traffic",
                traffic_over.elapsed().as_secs_f64()
            ));
        }
    }
    let kill_count = kills.lock().expect("kills").len();
    if repeated.len() > kill_count {
        problems.push(format!(
            "[notifications] {} notifications arrived twice, more than the {kill_count} SIGKILLs can explain: {repeated:?}",
            repeated.len()
        ));
    }
    for (key, got) in &received {
        if !expected.contains_key(key) {
            problems
                .push(format!("[notifications] notification {key:?} arrived {got} times but is in no delivery log"));
        }
    }

    // No deadlocks in any log.
    for i in &instances {
        for line in i.log().lines().filter(|l| l.to_lowercase().contains("deadlock")) {
            problems.push(format!("[instance logs] {} logged: {line}", i.name));
        }
    }

    let mut states = BTreeMap::new();
    for (status, reason) in truth.values() {
        count(&mut states, format!("{status}{}", reason.as_ref().map_or(String::new(), |r| format!(" {r}"))));
    }
    eprintln!(
        "three instances: {:.1} s in all (setup {:.1} s, traffic {:.1} s, catch-up {:.1} s over {pass} pass(es))\n\
         SIGKILLs: {:?} (starts per instance: {:?})\noperations (curl N: no HTTP answer — 35, 55, 56: handshake refused; \
         7, 52: instance down or killed):\n{}\ncertificates by final state ({} known, {} on no client's list):\n{}\n\
         answers that promised a final state: {}\nCRLs fetched: {} (numbers {}–{})\nnotifications ({} escalations; delivery logs read {:.1} s after the traffic) by delivery log, and how often each arrived:\n{}",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        chaos_took.as_secs_f64(),
        caught_up.as_secs_f64(),
        kills.lock().expect("kills"),
        instances.iter().map(|i| (i.name.clone(), i.starts)).collect::<Vec<_>>(),
        table(&outcomes.lock().expect("outcomes")),
        certs.len(),
        truth.len() - certs.len(),
        table(&states),
        promises.len(),
        series.len(),
        series.first().map_or(0, |c| c.0),
        series.last().map_or(0, |c| c.0),
        escalations.len(),
        notifications_settled.as_secs_f64(),
        table(&notes),
    );
    drop(instances);
    fail_grouped("three instances with SIGKILLs", &problems);
}
