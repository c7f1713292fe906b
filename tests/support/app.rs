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
use connect_pki_server::state::AppState;
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
    /// Public submissions per client address and minute (high by default:
    /// the tests enroll many devices from one address).
    pub rate_limit_per_minute: u32,
    pub escalation_sla: time::Duration,
    pub hold_limit: time::Duration,
    /// Renewals a device may make per hour.
    pub renewals_per_hour: u32,
    /// Where the clock stands at start (the current time by default).
    pub start_at: Option<OffsetDateTime>,
    /// Where emergency notifications go (nowhere by default).
    pub notify: connect_pki_server::service::notify::NotifyConfig,
    /// Connection cap and timeouts of both listeners.
    pub limits: connect_pki_server::listen::Limits,
    /// Checkpoints of the audit log (none by default: the apps of a test
    /// process share one data directory).
    pub audit_checkpoints: Option<connect_pki_server::checkpoint::CheckpointSettings>,
    /// HTTPS certificate, redirect target and trusted proxies (none by default).
    pub https: connect_pki_server::config::HttpsSettings,
    /// A data directory of its own (a copy of the shared one) that the test
    /// may change, e.g. its terms of use; the shared one by default.
    pub own_data_dir: bool,
    /// How often the service looks whether its own certificates are due
    /// (every hour by default: the tests that renew call the renewal); only
    /// with [`Self::own_data_dir`].
    pub renewal_check: std::time::Duration,
    /// Serve from another app's own data directory (two instances sharing
    /// one, as on a shared volume); its renewals are on, its kept CRL off.
    pub data_dir_of: Option<PathBuf>,
    /// `--expiry-notice-days`. No expiry worker runs in these apps: tests
    /// call `service::expiry::tick` when they want one.
    pub expiry_notice_days: u32,
    /// What is recorded about relying parties (names of networks, flush interval).
    pub relying_parties: connect_pki_server::relying::RecordSettings,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 100_000,
            escalation_sla: connect_pki_domain::escalation::DEFAULT_SLA,
            hold_limit: connect_pki_domain::escalation::DEFAULT_HOLD_LIMIT,
            renewals_per_hour: connect_pki_domain::enrollment::DEFAULT_RENEWALS_PER_HOUR,
            start_at: None,
            notify: Default::default(),
            limits: Default::default(),
            audit_checkpoints: None,
            https: Default::default(),
            own_data_dir: false,
            renewal_check: std::time::Duration::from_secs(3600),
            data_dir_of: None,
            expiry_notice_days: connect_pki_domain::expiry::DEFAULT_WINDOW_DAYS,
            relying_parties: Default::default(),
        }
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
        public_url: PUBLIC_URL.into(),
        public_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ready_file: None,
        enrollment_code_ttl: connect_pki_domain::enrollment::DEFAULT_LIFETIME,
        crl_validity: time::Duration::hours(24),
        ocsp_validity: time::Duration::seconds(60),
        rate_limit_per_minute: opts.rate_limit_per_minute,
        calendar: Default::default(),
        escalation_sla: opts.escalation_sla,
        hold_limit: opts.hold_limit,
        notify: opts.notify,
        renewals_per_hour: opts.renewals_per_hour,
        feed: Default::default(),
        feed_listen: true,
        limits: opts.limits,
        allow_tls12: false,
        audit_checkpoints: opts.audit_checkpoints,
        https: opts.https,
        consistency_check: None,
        // Renewing writes to the data directory: never the shared one.
        renewal_check: (opts.own_data_dir || opts.data_dir_of.is_some()).then_some(opts.renewal_check),
        keep_crl: opts.own_data_dir,
        rejected_application_retention: time::Duration::days(90),
        expiry_check: None,
        expiry_notice_days: opts.expiry_notice_days,
        relying_parties: opts.relying_parties,
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
    let (_, cert, key) = connect_pki_server::bootstrap::bootstrap_database(&store, ca, now).await.expect("bootstrap");
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
