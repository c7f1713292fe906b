//! Test support for both suites. The in-process harness (`api` tests):
//! [`spawn_app`] with a test database and a steppable clock, an mTLS client
//! and builders. The end-to-end harness (`e2e` tests): builds the real
//! `connect-pki` binary, starts it on random ports in a temporary directory,
//! and runs the outside tools (openssl, curl, python3) the tests check it with.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use connect_pki_store::Backend;
use connect_pki_store::testing::TestDb;
use serde_json::Value;

pub mod app;
pub mod builders;
mod calls;
pub mod client;
pub mod clock;
pub mod fixtures;
mod instance;
pub mod ocsp;
pub mod process;
mod sinks;
pub mod words;
pub use app::{AppOptions, TestApp, spawn_app, spawn_app_with};
pub use clock::{FakeTime, faketime_library};
pub use instance::Instance;
pub use process::Spawned;
pub use sinks::Sinks;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Path of the freshly built binary. Built once per test run with the same
/// cargo that runs the tests, so the tests never exercise a stale build;
/// `CONNECT_PKI_BIN` names one built beforehand instead (`tests/at-every-hour`
/// runs the tests under libfaketime, where rustc must not run).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CONNECT_PKI_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "connect-pki", "--bin", "connect-pki"])
            .current_dir(workspace())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building connect-pki failed");
        let target =
            std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
        target.join("debug").join("connect-pki")
    })
}

/// Runs a command to completion and returns its output.
pub fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (the README's test command installs it)"))
}

/// stdout and stderr of an output, for assertions and messages.
pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A running `connect-pki serve` with its data directory and database.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub init: Value,
    pub public: String,
    pub api: String,
    pub db: TestDb,
    child: Option<Spawned>,
    /// The clock `serve` runs on, when not the test's own.
    clock: Option<FakeTime>,
    log: PathBuf,
}

impl Server {
    /// `init` then `serve` on `backend`, with extra environment variables.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    pub async fn start_with(backend: Backend, env: &[(&str, &str)]) -> Self {
        Self::start_init(backend, &[], env).await
    }

    /// [`Self::start_with`], with extra arguments for `init`.
    pub async fn start_init(backend: Backend, init_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(backend, init_args, env, None).await
    }

    /// `init` and `serve` on `clock` from the start, so that everything the
    /// service issues is valid on that clock.
    pub async fn start_at(backend: Backend, clock: FakeTime) -> Self {
        Self::start_on(backend, &[], &[], Some(clock)).await
    }

    async fn start_on(backend: Backend, init_args: &[&str], env: &[(&str, &str)], clock: Option<FakeTime>) -> Self {
        let db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let mut args = vec!["init".to_string(), "--json".into(), "--data-dir".into(), data_dir.display().to_string()];
        if backend == Backend::Postgres {
            args.extend(["--database-url".into(), db.url.clone()]);
        }
        args.extend(init_args.iter().map(|a| a.to_string()));
        let mut init = Command::new(binary());
        if let Some(clock) = &clock {
            clock.server(&mut init);
        }
        let out = init.args(&args).envs(env.iter().copied()).output().expect("init runs");
        assert!(out.status.success(), "init failed: {}", text(&out));
        let init: Value = serde_json::from_slice(&out.stdout).expect("init --json prints JSON");
        let mut server = Self {
            dir,
            data_dir,
            init,
            public: String::new(),
            api: String::new(),
            db,
            child: None,
            clock: None,
            log: PathBuf::new(),
        };
        server.spawn_as(clock, env, &[]);
        server
    }

    /// Starts `serve` on the existing data directory and waits until it answers.
    pub fn spawn(&mut self, env: &[(&str, &str)]) {
        self.spawn_as(None, env, &[]);
    }

    /// Starts `serve` on the existing data directory with `extra_args`.
    pub fn spawn_args(&mut self, extra_args: &[&str]) {
        self.spawn_as(None, &[], extra_args);
    }

    /// Starts `serve` on `clock` (libfaketime, Debian `faketime`). The
    /// clients the test runs through this server ([`Self::command`] and
    /// everything built on it) are put on the same clock.
    pub fn spawn_at(&mut self, clock: FakeTime, extra_args: &[&str]) {
        self.spawn_as(Some(clock), &[], extra_args);
    }

    /// [`Self::spawn_at`] with extra environment variables.
    pub fn spawn_at_env(&mut self, clock: FakeTime, extra_args: &[&str], env: &[(&str, &str)]) {
        self.spawn_as(Some(clock), env, extra_args);
    }

    fn spawn_as(&mut self, clock: Option<FakeTime>, env: &[(&str, &str)], extra_args: &[&str]) {
        let ready = self.dir.path().join("ready.json");
        let _ = std::fs::remove_file(&ready);
        self.log = self.dir.path().join("serve.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut cmd = Command::new(binary());
        if let Some(clock) = &clock {
            // libfaketime preloaded into the server itself (not the `faketime`
            // wrapper, which would sit between us and the server's pid).
            clock.server(&mut cmd);
        }
        self.clock = clock;
        cmd.args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir)
            .arg("--ready-file")
            .arg(&ready)
            .args(extra_args)
            // The suite enrolls many devices from one address; the rate-limit
            // test sets its own limit.
            .env("CONNECT_PKI_RATE_LIMIT_PER_MINUTE", "100000")
            .env("CONNECT_PKI_OCSP_RATE_LIMIT_PER_MINUTE", "10000000")
            .env("CONNECT_PKI_NEW_CONNECTIONS_PER_SOURCE_PER_MINUTE", "10000000")
            .envs(env.iter().copied())
            .env("CONNECT_PKI_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(Spawned::start(&mut cmd).expect("serve starts"));
        let addrs = self.wait_ready(&ready);
        self.public = addrs["public_addr"].as_str().expect("public_addr").to_string();
        self.api = addrs["api_addr"].as_str().expect("api_addr").to_string();
    }

    /// `program`, to run in the scratch directory on the server's clock.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        if let Some(clock) = &self.clock {
            clock.client(&mut cmd);
        }
        cmd.current_dir(self.dir.path()).stdin(Stdio::null());
        cmd
    }

    /// Runs a client of this server to completion ([`Self::command`]).
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e} (the README's test command installs it)"))
    }

    /// [`python_json`], as a client of this server.
    pub fn python_json(&self, script: &str, args: &[&str]) -> Value {
        script_json(script, args, self.command("python3"))
    }

    fn wait_ready(&mut self, ready: &Path) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(bytes) = std::fs::read(ready)
                && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
            {
                return v;
            }
            if self.child.as_ref().is_some_and(|c| !c.running()) {
                let status = self.child.as_mut().and_then(Spawned::reap);
                panic!("serve exited with {status:?} before listening:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "serve did not become ready in 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Spawned::id)
    }

    /// Collects a server that was killed from outside.
    pub fn reap(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.reap();
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 10 s) until the log contains `needle`; returns whether it did.
    /// The server writes its log line after the client already saw the result.
    pub fn log_contains(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and returns the exit status (None if it had to be killed).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take()?.stop(Duration::from_secs(15))
    }

    /// A file in the data directory.
    pub fn data(&self, rel: &str) -> PathBuf {
        self.data_dir.join(rel)
    }

    /// A path in the scratch directory.
    pub fn scratch(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The bootstrap PKCS#12 password from `init --json`.
    pub fn p12_password(&self) -> &str {
        self.init["bootstrap"]["pkcs12_password"].as_str().expect("password")
    }

    /// Extracts the bootstrap admin's certificate and key into one PEM file
    /// with `openssl pkcs12` (no `-legacy`) and returns its path.
    pub fn admin_pem(&self) -> PathBuf {
        let out = self.scratch("admin.pem");
        if !out.exists() {
            let p12 = self.init["bootstrap"]["pkcs12_path"].as_str().expect("path").to_string();
            let pass = format!("pass:{}", self.p12_password());
            let o = run(
                "openssl",
                &["pkcs12", "-in", &p12, "-passin", &pass, "-nodes", "-out", &out.display().to_string()],
                self.dir.path(),
            );
            assert!(o.status.success(), "openssl pkcs12 could not open the bootstrap PKCS#12: {}", text(&o));
        }
        out
    }

    /// `curl` against the mTLS listener, trusting our root. Returns (exit
    /// code, HTTP status, body).
    pub fn curl_api(&self, path: &str, extra: &[&str]) -> (i32, u16, String) {
        let url = format!("https://{}{}", self.api, path);
        let root = self.data("ca/root.pem").display().to_string();
        let mut args = vec!["-sS", "--max-time", "20", "--cacert", &root, "-w", "\n%{http_code}"];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(self.run("curl", &args))
    }

    /// `/metrics`, as a scraper holding a client certificate of 行政管理課 reads it.
    pub fn metrics(&self) -> String {
        let admin = self.admin_pem().display().to_string();
        let (code, status, page) = self.curl_api("/metrics", &["--cert", &admin]);
        assert_eq!((code, status), (0, 200), "{page}");
        page
    }

    /// `curl` against the plain listener.
    pub fn curl_public(&self, path: &str, extra: &[&str]) -> (i32, u16, String) {
        let url = format!("http://{}{}", self.public, path);
        let mut args = vec!["-sS", "--max-time", "20", "-w", "\n%{http_code}"];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(self.run("curl", &args))
    }
}

impl Server {
    /// Writes a request body to a fresh file and returns curl's `@path` for it
    /// (bodies can exceed the command-line limit).
    fn body_file(&self, body: &Value) -> String {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.scratch(&format!("body-{n}.json"));
        std::fs::write(&path, body.to_string()).expect("write body");
        format!("@{}", path.display())
    }

    /// A JSON call on the mTLS API as the holder of `pem` (certificate and
    /// key in one file; `None` for no certificate). Returns status and body.
    pub fn api(&self, method: &str, path: &str, pem: Option<&Path>, body: Option<&Value>) -> (u16, Value) {
        let pem_s = pem.map(|p| p.display().to_string());
        let body_s = body.map(|b| self.body_file(b));
        let mut args: Vec<&str> = vec!["-X", method];
        if let Some(p) = &pem_s {
            args.extend(["--cert", p.as_str()]);
        }
        if let Some(b) = &body_s {
            args.extend(["--data-binary", b.as_str()]);
        }
        // Every state change on the mTLS API is JSON, even without a body.
        if body_s.is_some() || method != "GET" {
            args.extend(["-H", "content-type: application/json"]);
        }
        let (code, status, text) = self.curl_api(path, &args);
        assert_eq!(code, 0, "curl {method} {path} failed: {text}");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A JSON call to a public route: HTTPS, no client certificate.
    pub fn public_api(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body_s = body.map(|b| self.body_file(b));
        let mut args: Vec<&str> = vec!["-X", method];
        if let Some(b) = &body_s {
            args.extend(["-H", "content-type: application/json", "--data-binary", b.as_str()]);
        }
        let (code, status, text) = self.curl_api(path, &args);
        assert_eq!(code, 0, "curl {method} {path} failed: {text}");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Redeems `code` for a server-generated key; opens the PKCS#12 with
    /// `openssl pkcs12` (no `-legacy`) and returns a PEM with certificate and key.
    pub fn enroll_generated(&self, code: &str, password: Option<&str>, name: &str) -> PathBuf {
        let mut body = serde_json::json!({"code": code, "generate_key": true, "device_label": name});
        if let Some(p) = password {
            body["password"] = p.into();
        }
        let (status, out) = self.public_api("POST", "/api/v1/enroll", Some(&body));
        assert_eq!(status, 201, "enroll {name}: {out}");
        let p12 = self.scratch(&format!("{name}.p12"));
        let b64 = out["pkcs12"].as_str().expect("pkcs12");
        std::fs::write(self.scratch(&format!("{name}.p12.b64")), b64).expect("write");
        let o = run(
            "openssl",
            &["base64", "-d", "-A", "-in", &format!("{name}.p12.b64"), "-out", &p12.display().to_string()],
            self.dir.path(),
        );
        assert!(o.status.success(), "{}", text(&o));
        let pem = self.scratch(&format!("{name}.pem"));
        let pass = format!("pass:{}", out["pkcs12_password"].as_str().expect("password"));
        let o = run(
            "openssl",
            &[
                "pkcs12",
                "-in",
                &p12.display().to_string(),
                "-passin",
                &pass,
                "-nodes",
                "-out",
                &pem.display().to_string(),
            ],
            self.dir.path(),
        );
        assert!(o.status.success(), "openssl pkcs12 could not open the enrolled PKCS#12: {}", text(&o));
        pem
    }

    /// Makes a key and CSR with `openssl req` (subject `subj`), returning the
    /// key path and the CSR PEM.
    pub fn openssl_csr(&self, name: &str, subj: &str, newkey: &[&str]) -> (PathBuf, String) {
        let key = self.scratch(&format!("{name}.key"));
        let csr = self.scratch(&format!("{name}.csr"));
        let mut args = vec!["req", "-new", "-newkey"];
        args.extend_from_slice(newkey);
        let (k, c) = (key.display().to_string(), csr.display().to_string());
        args.extend_from_slice(&["-nodes", "-keyout", &k, "-subj", subj, "-out", &c]);
        let o = run("openssl", &args, self.dir.path());
        assert!(o.status.success(), "{}", text(&o));
        (key, std::fs::read_to_string(&csr).expect("csr"))
    }

    /// Redeems `code` with an `openssl req` CSR and returns a PEM with the
    /// issued certificate and the key.
    pub fn enroll_csr(&self, code: &str, password: Option<&str>, name: &str, subj: &str) -> PathBuf {
        let (key, csr) = self.openssl_csr(name, subj, &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
        let mut body = serde_json::json!({"code": code, "csr": csr, "device_label": name});
        if let Some(p) = password {
            body["password"] = p.into();
        }
        let (status, out) = self.public_api("POST", "/api/v1/enroll", Some(&body));
        assert_eq!(status, 201, "enroll {name}: {out}");
        let pem = self.scratch(&format!("{name}.pem"));
        let cert = out["certificate"].as_str().expect("certificate");
        let key = std::fs::read_to_string(key).expect("key");
        std::fs::write(&pem, format!("{cert}{key}")).expect("write");
        pem
    }
}

fn curl(out: Output) -> (i32, u16, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    let code = out.status.code().unwrap_or(-1);
    let body = if code == 0 { body.to_string() } else { format!("{body}{}", String::from_utf8_lossy(&out.stderr)) };
    (code, status.trim().parse().unwrap_or(0), body)
}

/// A second instance serving the same data directory and database.
pub struct Peer {
    _child: Spawned,
    pub public: String,
    pub api: String,
}

impl Peer {
    /// The second instance's process id.
    pub fn pid(&self) -> Option<u32> {
        self._child.id()
    }
}

impl Server {
    /// Starts another `serve` on the same data directory and database (for
    /// PostgreSQL, where several instances share one database).
    pub fn peer(&self) -> Peer {
        self.peer_with(&[])
    }

    /// The same with extra environment variables for the second instance.
    pub fn peer_with(&self, env: &[(&str, &str)]) -> Peer {
        let ready = self.dir.path().join("peer-ready.json");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir)
            .arg("--ready-file")
            .arg(&ready)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = Spawned::start(&mut cmd).expect("second serve starts");
        let mut peer = Peer { _child: child, public: String::new(), api: String::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        let addrs: Value = loop {
            if let Some(v) = std::fs::read(&ready).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
                break v;
            }
            assert!(peer._child.running(), "second instance exited");
            assert!(Instant::now() < deadline, "second instance did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        peer.public = addrs["public_addr"].as_str().unwrap_or_default().to_string();
        peer.api = addrs["api_addr"].as_str().unwrap_or_default().to_string();
        peer
    }
}

impl Server {
    /// Runs `f` with this server's addresses pointing at `peer`'s: every
    /// helper that takes a `Server` then talks to the second instance.
    pub fn through<R>(&mut self, peer: &Peer, f: impl FnOnce(&Server) -> R) -> R {
        let public = std::mem::replace(&mut self.public, peer.public.clone());
        let api = std::mem::replace(&mut self.api, peer.api.clone());
        let out = f(self);
        (self.public, self.api) = (public, api);
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `tests/py/<script>` with python3 and parses its JSON output.
pub fn python_json(script: &str, args: &[&str], dir: &Path) -> Value {
    let mut python = Command::new("python3");
    python.current_dir(dir).stdin(Stdio::null());
    script_json(script, args, python)
}

/// `tests/py/<script>` run by `python3` (a command set up to run it), its
/// JSON output parsed.
fn script_json(script: &str, args: &[&str], mut python: Command) -> Value {
    let out = python
        .arg(workspace().join("tests/py").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3: {e} (the README's test command installs it)"));
    assert!(out.status.success(), "{script} failed: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {}", text(&out)))
}

/// Runs the async test body once per backend, as tests `sqlite` and `postgres`
/// in a module named after the body.
#[macro_export]
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    };
}
