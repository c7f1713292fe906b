//! The service in-process: [`spawn_app`] starts it on port 0 with a fresh
//! test database (either backend) and a clock the test steps by hand.
//!
//! The CA hierarchy is made once per test process (one `init` into a shared
//! temporary directory) and reused by every app: key generation and key
//! encryption are the slow part of `init`, and what the tests check does not
//! depend on having a CA of their own. Each app still gets its own database
//! with its own bootstrap administrator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use connect_pki_ca::IssuingCa;
use connect_pki_domain::Clock;
use connect_pki_domain::clock::FixedClock;
use connect_pki_server::http::state::AppState;
use connect_pki_server::{InitOptions, Running, ServeConfig};
use connect_pki_store::testing::TestDb;
use connect_pki_store::{Backend, Store};
use time::OffsetDateTime;

use crate::client::Identity;

/// The public URL written into certificates, as the binary's default.
const PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// The CA every in-process app of this test process serves.
pub struct SharedCa {
    _dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub issuing: IssuingCa,
    pub root_der: Vec<u8>,
    pub issuing_der: Vec<u8>,
    pub ocsp_der: Vec<u8>,
}

/// The shared CA, made on first use. `init` runs on a thread of its own with
/// its own runtime, so no test's runtime owns anything it leaves behind.
pub fn shared_ca() -> &'static SharedCa {
    static CA: OnceLock<SharedCa> = OnceLock::new();
    CA.get_or_init(|| std::thread::spawn(make_ca).join().expect("making the shared CA"))
}

fn make_ca() -> SharedCa {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let opts = InitOptions {
        data_dir: data_dir.clone(),
        database_url: None,
        public_url: PUBLIC_URL.into(),
        tls_names: vec![],
        pkcs11: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(connect_pki_server::init(&opts, &connect_pki_domain::clock::SystemClock)).expect("init");
    let ca = connect_pki_server::datadir::DataDir::new(&data_dir).load(PUBLIC_URL).expect("the CA loads");
    SharedCa {
        _dir: dir,
        data_dir,
        issuing: ca.issuing,
        root_der: ca.root_der,
        issuing_der: ca.issuing_der,
        ocsp_der: ca.ocsp_der,
    }
}

/// What a test may change about the service it starts.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Where the clock stands at start (the current time by default).
    pub start_at: Option<OffsetDateTime>,
    /// A data directory of its own (a copy of the shared one) that the test
    /// may change, e.g. its terms of use; the shared one by default. Only
    /// such an app renews its own certificates and keeps its CRLs.
    pub own_data_dir: bool,
    /// Serve from another app's own data directory (two instances sharing
    /// one, as on a shared volume); its renewals are on, its kept CRL off.
    pub data_dir_of: Option<PathBuf>,
    /// The service's settings: the binary's defaults ([`ServeConfig::default_for`])
    /// except what would get in a test's way — a rate limit high enough for
    /// many enrollments from one address, no audit checkpoints (the apps of
    /// a test process share one data directory), no consistency, renewal
    /// or expiry worker (tests call `renew_due` or `ra::expiry::tick` when
    /// they want one). The data directory and database are the harness's.
    pub config: ServeConfig,
}

impl AppOptions {
    /// The defaults with `change` made to the settings.
    pub fn with(change: impl FnOnce(&mut ServeConfig)) -> Self {
        let mut opts = Self::default();
        change(&mut opts.config);
        opts
    }
}

impl Default for AppOptions {
    fn default() -> Self {
        let mut config = ServeConfig::default_for(&shared_ca().data_dir);
        config.public_url = PUBLIC_URL.parse().expect("a URL");
        config.public_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.api_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        config.rate_limit_per_minute = 100_000;
        config.ocsp_rate_limit_per_minute = 10_000_000;
        // Every call of the suite is a new connection from 127.0.0.1.
        config.limits.new_connections_per_source_per_minute = 10_000_000;
        config.audit_checkpoints = None;
        config.consistency_check = None;
        config.expiry_check = None;
        Self { start_at: None, own_data_dir: false, data_dir_of: None, config }
    }
}

/// A running in-process service, its database and its clock.
pub struct TestApp {
    pub db: TestDb,
    /// The clock the service reads (`state.clock`); step it with
    /// [`FixedClock::advance`] or [`FixedClock::set`].
    pub clock: Arc<FixedClock>,
    /// The bootstrap administrator (facility 1, user 1, device 1).
    pub admin: Identity,
    pub public: SocketAddr,
    pub api: SocketAddr,
    pub ca: &'static SharedCa,
    /// The app's own data directory (see [`AppOptions::own_data_dir`]).
    _own_dir: Option<tempfile::TempDir>,
    config: ServeConfig,
    running: Option<Running>,
}

/// The service on `backend` with the default options.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, AppOptions::default()).await
}

/// The service on `backend` with `opts`.
pub async fn spawn_app_with(backend: Backend, opts: AppOptions) -> TestApp {
    let ca = shared_ca();
    let db = TestDb::new(backend).await;
    let clock = Arc::new(FixedClock::new(opts.start_at.unwrap_or_else(OffsetDateTime::now_utc)));
    let admin = bootstrap(&db, &ca.issuing, clock.now()).await;
    let own_dir = opts.own_data_dir.then(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&ca.data_dir, &dir.path().join("data"));
        dir
    });
    let config = ServeConfig {
        data_dir: match (&opts.data_dir_of, &own_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(d)) => d.path().join("data"),
            (None, None) => ca.data_dir.clone(),
        },
        database_url: db.url.clone(),
        // Renewing writes to the data directory: never the shared one.
        renewal_check: opts.config.renewal_check.filter(|_| opts.own_data_dir || opts.data_dir_of.is_some()),
        keep_crl: opts.own_data_dir,
        ..opts.config
    };
    let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut app =
        TestApp { db, clock, admin, public: unbound, api: unbound, ca, _own_dir: own_dir, config, running: None };
    app.start().await;
    app
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// What `init` writes into a new database: the city's facility and its first
/// administrator with one certificate, issued here by the shared CA.
async fn bootstrap(db: &TestDb, ca: &IssuingCa, now: OffsetDateTime) -> Identity {
    let store = Store::connect(&db.url).await.expect("test database");
    let (_, cert, key) = connect_pki_server::admin::init::bootstrap_database(&store, ca, now).await.expect("bootstrap");
    store.close().await;
    Identity { cert_der: cert.der, key_der: key.pkcs8_der().to_vec() }
}

impl TestApp {
    /// Starts the service (again) on this app's database, data directory and
    /// clock, on new ports. Work that fell due while it was stopped runs
    /// before it answers, as after a restart of the binary.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "already running");
        let clock: Arc<dyn Clock> = self.clock.clone();
        let running = connect_pki_server::start(self.config.clone(), clock).await.expect("the service starts");
        self.public = running.public_addr;
        self.api = running.api_addr;
        self.running = Some(running);
    }

    /// The data directory this app serves from.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.data_dir
    }

    /// Stops the service and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }

    /// What the handlers see.
    pub fn state(&self) -> &AppState {
        &self.running.as_ref().expect("running").state
    }

    /// The service's own certificates and where their renewals go.
    pub fn own(&self) -> &std::sync::Arc<connect_pki_server::app::renewal::OwnCerts> {
        &self.running.as_ref().expect("running").own
    }

    /// The bootstrap administrator's certificate serial.
    pub fn admin_serial(&self) -> String {
        self.admin.serial()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown_token().cancel();
        }
    }
}
