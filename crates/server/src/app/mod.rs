//! `connect-pki serve`: both listeners and the background workers, until
//! SIGINT or SIGTERM. [`start`] is the same service without the signals, for
//! callers that stop it themselves (the in-process test harness).

pub(crate) mod relying;
pub mod renewal;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::middleware;
use connect_pki_ca::IssuingCa;
use connect_pki_ca::ocsp::OcspSigner;
use connect_pki_ca::scep::ScepRa;
use connect_pki_domain::Clock;
use connect_pki_responder::{Responder, Revocations};
use connect_pki_store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::datadir::DataDir;
use crate::http::{api, body_limit, health, log_request, pki};
use connect_pki_ca::PublicCerts;
use connect_pki_ra::Ra;

use crate::http::state::{AppState, RateLimits};
use crate::net::tls::{Connections, ServerCert, TlsIdentity};
use renewal::OwnCerts;

/// Runs the service until a shutdown signal arrives.
pub async fn serve(config: ServeConfig, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    // Signal handlers first: a SIGTERM that arrives while starting up must
    // still stop the service cleanly, not kill it.
    let signals = Signals::install()?;
    let running = start(config, clock).await?;
    signals.wait().await;
    tracing::info!("shutting down");
    running.stop().await
}

/// A started service: both listeners bound, due work caught up, the workers
/// running. Dropping it leaves the service running until its shutdown token
/// is cancelled.
pub struct Running {
    pub public_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub state: AppState,
    /// The service's own TLS certificate and where its renewals are written.
    pub own: Arc<OwnCerts>,
    shutdown: CancellationToken,
    public_task: JoinHandle<()>,
    api_task: JoinHandle<()>,
    checkpoints: JoinHandle<Option<crate::checkpoint::Checkpointer>>,
    /// The shared lock on `serve.lock`, released when the process ends.
    _serving: std::fs::File,
    /// Where the public listener runs (see [`PublicThreads`]).
    _public_threads: PublicThreads,
}

/// Threads at a lower CPU priority (nice +10) for the work anyone can ask
/// for: the whole public listener, and on the HTTPS listener every accept,
/// TLS handshake and connection without one of our client certificates.
///
/// The public listener answers OCSP, CRL and CA downloads, which any relying
/// party can ask for as fast as it likes; a stranger can open TLS
/// connections, send wrong codes and load pages as fast. On the same cores,
/// a flood of either would queue a revocation behind it. Here, the
/// scheduler gives the revocation path (the main threads: a connection
/// that showed a client certificate moves there after its handshake, the
/// CRL build, the database) the cores first whenever it has work, and the
/// rest everything else; idle, nothing is lost. The revoke-under-load and
/// hostile-load benchmarks measure both sides.
pub(crate) struct PublicThreads(Option<tokio::runtime::Runtime>);

/// How much lower the public listener's threads run (`nice`).
const PUBLIC_NICE: i32 = 10;

impl PublicThreads {
    fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .thread_name("public")
            .on_thread_start(|| {
                // Per thread on Linux; lowering one's own priority needs no privilege.
                if let Err(e) = rustix::process::setpriority_process(None, PUBLIC_NICE) {
                    tracing::warn!(error = %e, "the public listener's thread keeps the normal priority");
                }
            })
            .enable_all()
            .build()
            .context("starting the public listener's threads")?;
        Ok(Self(Some(runtime)))
    }

    /// Runs `serve` with `listener` on these threads.
    fn serve<F>(
        &self,
        listener: TcpListener,
        serve: impl FnOnce(TcpListener) -> F + Send + 'static,
    ) -> anyhow::Result<JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // A listener is registered with the runtime that polls it.
        let listener = listener.into_std()?;
        let serve = async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => serve(listener).await,
                Err(e) => tracing::error!(error = %e, "a listener could not start"),
            }
        };
        Ok(match &self.0 {
            Some(runtime) => runtime.spawn(serve),
            None => tokio::spawn(serve),
        })
    }
}

impl Drop for PublicThreads {
    fn drop(&mut self) {
        // Dropped from async code: a blocking shutdown would panic there.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Running {
    /// Cancelling this token stops the listeners and the workers.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the service and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the service ends (after its shutdown token is cancelled).
    pub(crate) async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        let _ = self.api_task.await;
        self.public_task.await.context("public listener")?;
        // Refusals counted since the last minute, before the audit head is checkpointed.
        if let Err(e) = connect_pki_ra::audit::flush_refusals(&self.state).await {
            tracing::error!(error = %e, "the refusals counted last could not be written at shutdown");
        }
        crate::checkpoint::at_shutdown(self.checkpoints, &self.state).await;
        // What relying parties asked since the last write, before the pool closes.
        if let Err(e) = connect_pki_ra::sightings::flush(&self.state).await {
            tracing::error!(error = %e, "the relying parties' last counts could not be written at shutdown");
        }
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// What [`build`] puts together before anything listens.
struct Built {
    state: AppState,
    own: Arc<OwnCerts>,
    tls_config: Arc<rustls::ServerConfig>,
    connections: Arc<Connections>,
}

/// This process's name among the instances (notification leases,
/// heartbeats): host, process id and a random part, so that an operator
/// reading "not applied by …" knows which machine to look at.
fn instance_name() -> anyhow::Result<Arc<str>> {
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let random = connect_pki_ra::secrets::random_secret(4)?;
    Ok(Arc::from(format!("{host}/{}-{random}", std::process::id()).as_str()))
}

/// Where CRLs are kept and issuances journaled, once the database has been
/// compared with both (and brought up to them, if it is behind: a restore).
/// The journal goes first: a certificate issued after the backup is put
/// back as it was issued, and the kept CRL then revokes it if it lists it.
async fn kept_crls(
    dir: &DataDir,
    cas: &[Arc<IssuingCa>],
    store: &Store,
    now: time::OffsetDateTime,
) -> anyhow::Result<(std::path::PathBuf, Arc<crate::datadir::journal::FileJournal>)> {
    let journal = Arc::new(crate::datadir::journal::FileJournal::open(dir)?);
    let issued = crate::datadir::journal::read(&dir.journal())?;
    let recreated = store
        .recreate_issued(&issued, "system:journal", now)
        .await
        .context("comparing the database with the issuance journal")?;
    if !recreated.is_empty() {
        tracing::warn!(
            recreated = recreated.len(),
            serials = %recreated.iter().map(connect_pki_domain::Serial::to_hex).collect::<Vec<_>>().join(","),
            "the database lacks certificates this service issued (restored from a backup?): they were put back \
             from the issuance journal, with their device, user and facility where those were missing"
        );
    }
    crate::admin::backup::reapply_published_crl(dir, cas, store, now)
        .await
        .context("comparing the database with the newest CRL this service published")?;
    Ok((dir.kept_crls(), journal))
}

/// Records each issuing CA generation's fingerprint the first time it is
/// served, and refuses to start with another CA under a recorded generation
/// (two hosts that each ran `ca rollover` on one database).
async fn same_cas_as_recorded(
    store: &Store,
    cas: &[Arc<IssuingCa>],
    data_dir: &std::path::Path,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    let fingerprints: Vec<(i64, String)> =
        cas.iter().map(|ca| (i64::from(ca.generation()), crate::admin::init::fingerprint(ca.cert_der()))).collect();
    let differ = store.record_issuing_cas(&fingerprints, now).await?;
    if let Some((generation, recorded)) = differ.first() {
        anyhow::bail!(
            "the issuing CA of generation {generation} in {} (SHA-256 {}) is not the one this database has \
             recorded for that generation (SHA-256 {recorded}): another host made its own with `ca rollover`. \
             Copy the ca/ directory of the instance that made it first, and never run `ca rollover` on two hosts",
            data_dir.display(),
            fingerprints.iter().find(|(g, _)| g == generation).map_or("?", |(_, f)| f.as_str()),
        );
    }
    Ok(())
}

/// How this instance follows the feed: `LISTEN` on PostgreSQL unless turned
/// off, and heartbeats under `instance_id` when changes wait for every
/// instance.
fn feed_settings(config: &ServeConfig, store: &Store, instance_id: &Arc<str>) -> connect_pki_responder::FeedSettings {
    let mut feed = config.feed.clone();
    if config.feed_listen && store.backend() == connect_pki_store::Backend::Postgres {
        feed.listen_url = Some(config.database_url.clone());
    }
    if config.ra.every_instance {
        feed.heartbeat = Some(instance_id.clone());
    }
    feed
}

/// The CA, the store, the revocation state and the shared state.
async fn build(config: &ServeConfig, clock: Arc<dyn Clock>, shutdown: &CancellationToken) -> anyhow::Result<Built> {
    let dir = DataDir::new(&config.data_dir);
    let ca = dir.load(config.public_url.as_str()).context("loading the CA from the data directory")?;
    let store = Store::connect(&config.database_url).await?;
    // What relying parties ask and which certificates shake hands, counted
    // for `crate::relying` (when recording is on).
    let sightings = Arc::new(connect_pki_responder::Sightings::default());
    let observer: Option<crate::net::tls::HandshakeObserver> = config.ra.relying.enabled.then(|| {
        let (sightings, clock) = (sightings.clone(), clock.clone());
        Arc::new(move |serial: u128, ok: bool, from: Option<std::net::IpAddr>| {
            sightings.handshake(serial, ok, from, clock.now());
        }) as crate::net::tls::HandshakeObserver
    });
    let connections = Arc::new(Connections::observed(observer.clone()));
    let crate::datadir::LoadedCa { issuing, root_der, issuing_der, tls_der, tls_key, ocsp_der, ocsp_key, older, keys } =
        ca;
    let scep = dir.scep_ra(&keys, &issuing, clock.now()).context("the SCEP RA certificate")?.map(Arc::new);
    let issuing = Arc::new(issuing);
    let generations = generations(older, &issuing, &issuing_der, &ocsp_der, ocsp_key)?;
    let cas: Vec<Arc<IssuingCa>> = generations.iter().map(|(ca, _, _)| ca.clone()).collect();
    let issuing_ders: Vec<Vec<u8>> = generations.iter().map(|(_, der, _)| der.clone()).collect();
    same_cas_as_recorded(&store, &cas, &config.data_dir, clock.now()).await?;
    let instance_id = instance_name()?;
    let feed = feed_settings(config, &store, &instance_id);
    let (kept_crl, journal) = match config.keep_crl {
        true => {
            let (kept, journal) = kept_crls(&dir, &cas, &store, clock.now()).await?;
            (Some(kept), Some(journal as Arc<dyn connect_pki_ra::IssuanceJournal>))
        }
        false => (None, None),
    };
    let revocations = Revocations::start(
        store.clone(),
        cas,
        clock.clone(),
        connections.clone(),
        config.crl_validity,
        feed,
        kept_crl,
        shutdown.clone(),
    )
    .await
    .context("loading the revocation state")?;
    let server_cert = Arc::new(match &config.https.cert_files {
        Some((cert, key)) => ServerCert::new(&TlsIdentity::from_files(&issuing_der, cert, key)?, false)?,
        None => {
            // Issued by whichever generation was newest at its last renewal.
            let issuer = crate::net::tls::issuer_among(&tls_der, &issuing_ders).unwrap_or(&issuing_der);
            ServerCert::new(&TlsIdentity::ours(issuer, &tls_der, tls_key), true)?
        }
    });
    let lookup = Some(crate::net::tls::index_lookup(revocations.clone(), observer));
    let tls_config = crate::net::tls::server_config(&issuing_ders, server_cert.clone(), lookup, config.allow_tls12)?;
    let signers: Vec<(u32, OcspSigner)> =
        generations.into_iter().map(|(ca, _, signer)| (ca.generation(), signer)).collect();
    let ra = Ra {
        store: store.clone(),
        certs: Arc::new(PublicCerts::new(root_der, &issuing_ders)),
        ca: issuing,
        clock: clock.clone(),
        settings: Arc::new(settings_of(config)?),
        revocations,
        ocsp: Arc::new(Responder::new(signers, config.ocsp_validity, clock.clone(), sightings)),
        pseudonyms: Arc::new(crate::pseudonym::load_or_create(dir.path())?),
        webhook_key: Arc::new(crate::datadir::webhook_key(dir.path())?),
        instance_id,
        journal,
        key_generation: Arc::default(),
        refusals: Arc::default(),
    };
    let state = app_state(config, ra, scep)?;
    let own = Arc::new(OwnCerts { tls: server_cert, dir, keys });
    Ok(Built { state, own, tls_config, connections })
}

/// What the web needs beside the registration authority.
fn app_state(config: &ServeConfig, ra: Ra, scep: Option<Arc<ScepRa>>) -> anyhow::Result<AppState> {
    Ok(AppState {
        ra,
        limits: Arc::new(rate_limits(config)),
        https_url: config.https.url.as_ref().map(|u| Arc::from(u.as_str().trim_end_matches('/'))),
        metrics: crate::http::metrics::install(),
        gauges_read: Arc::default(),
        csrf_key: Arc::new(crate::http::console::new_csrf_key()?),
        scep,
    })
}

/// The per-address limits of the public forms and of OCSP.
fn rate_limits(config: &ServeConfig) -> RateLimits {
    let limit = || crate::http::ratelimit::Limit::per_minute(config.rate_limit_per_minute);
    RateLimits {
        apply: limit(),
        enroll: limit(),
        emergency: limit(),
        ocsp: crate::http::ratelimit::Limit::per_minute(config.ocsp_rate_limit_per_minute),
        strangers: std::sync::Arc::new(crate::http::strangers::Strangers::here()),
    }
}

/// The registration authority's settings, with the terms of use in the
/// data directory.
fn settings_of(config: &ServeConfig) -> anyhow::Result<connect_pki_ra::Settings> {
    if config.ra.city_desk.phone.is_none() {
        tracing::warn!(
            "no --city-phone: the pages, code slips and e-mails that tell people to call 行政管理課 give no number"
        );
    }
    Ok(connect_pki_ra::Settings { terms: crate::terms::load(&config.data_dir)?, ..config.ra.clone() })
}

/// An issuing CA generation: the CA, its certificate's DER, its OCSP signer.
type Generation = (Arc<IssuingCa>, Vec<u8>, OcspSigner);

/// Every issuing CA generation, oldest first, each with its OCSP signer.
fn generations(
    older: Vec<crate::datadir::CaGeneration>,
    newest: &Arc<IssuingCa>,
    newest_der: &[u8],
    ocsp_der: &[u8],
    ocsp_key: connect_pki_ca::CaKey,
) -> anyhow::Result<Vec<Generation>> {
    let mut generations = Vec::new();
    for g in older {
        let signer = OcspSigner::new(&g.ocsp_der, g.ocsp_key, &g.issuing_der)?;
        generations.push((Arc::new(g.issuing), g.issuing_der, signer));
    }
    generations.push((newest.clone(), newest_der.to_vec(), OcspSigner::new(ocsp_der, ocsp_key, newest_der)?));
    Ok(generations)
}

/// Binds both listeners, builds the state, carries out due work and spawns
/// the listeners and workers; returns once the service answers.
pub async fn start(config: ServeConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    let shutdown = CancellationToken::new();
    let serving = DataDir::new(&config.data_dir).hold_serving()?;
    let Built { state, own, tls_config, connections } = build(&config, clock, &shutdown).await?;
    let store = state.store.clone();
    let public_listener = TcpListener::bind(config.public_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--public-addr)", config.public_addr))?;
    let api_listener = TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("cannot listen on {} (--api-addr)", config.api_addr))?;
    let public_addr = public_listener.local_addr()?;
    let api_addr = api_listener.local_addr()?;

    // A service started after a long stop (or under a clock set forward)
    // renews its expired certificates before anyone sees them.
    if let Some(every) = config.renewal_check {
        if let Err(e) = renewal::renew_due(&state, &own).await {
            tracing::error!(error = format!("{e:#}"), "renewing the service's own certificates failed; retrying");
        }
        tokio::spawn(renewal::worker(state.ra.clone(), own.clone(), every, shutdown.clone()));
    }
    // Retirements that fell due while the service was down run before it
    // answers anyone.
    connect_pki_ra::users::run_due_retirements(&state).await?;
    connect_pki_ra::facilities::hold_suspended_facilities(&state).await?;
    connect_pki_ra::escalations::run_due(&state).await?;
    tokio::spawn(workers::retirement_worker(state.clone(), shutdown.clone()));
    if let Some(every) = config.consistency_check {
        tokio::spawn(workers::consistency_worker(state.clone(), every, shutdown.clone()));
    }
    tokio::spawn(connect_pki_ra::expiry::worker(state.ra.clone(), config.expiry_check, shutdown.clone()));
    if config.ra.relying.enabled {
        tokio::spawn(relying::worker(state.ra.clone(), config.ra.relying.clone(), shutdown.clone()));
    }
    tokio::spawn(workers::refusal_writer(state.ra.clone(), shutdown.clone()));
    let checkpoints = crate::checkpoint::spawn(state.ra.clone(), config.audit_checkpoints.clone(), shutdown.clone());

    tracing::info!(%public_addr, %api_addr, backend = ?store.backend(), "connect-pki listening");
    if let Some(path) = &config.ready_file {
        let tmp = path.with_extension("tmp");
        let body = serde_json::json!({"public_addr": public_addr, "api_addr": api_addr}).to_string();
        std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, path)).context("writing --ready-file")?;
    }

    let web = Web::new(&config.https, api_addr.port());
    let (public_app, api_app) = apps(&state, &web);
    let limits = config.limits;
    let public_threads = PublicThreads::start()?;
    let proxies = crate::net::proxy::Trusted(config.https.trusted_proxies.clone());
    let stop = shutdown.clone();
    let public_task = public_threads
        .serve(public_listener, move |l| crate::net::listen::serve_plain(l, public_app, limits, proxies, stop))?;
    let tls_listener = crate::net::tls::TlsListener {
        config: tls_config,
        app: api_app,
        connections,
        status_of: Some(crate::net::tls::index_lookup(state.revocations.clone(), None)),
        limits,
        proxies: crate::net::proxy::Trusted(config.https.trusted_proxies.clone()),
        home: Some(tokio::runtime::Handle::current()),
    };
    let stop = shutdown.clone();
    let api_task = public_threads.serve(api_listener, move |l| crate::net::tls::serve(l, tls_listener, stop))?;

    Ok(Running {
        public_addr,
        api_addr,
        state,
        own,
        shutdown,
        public_task,
        api_task,
        checkpoints,
        _serving: serving,
        _public_threads: public_threads,
    })
}

/// The routers of the plain listener and of the HTTPS (mTLS) listener.
///
/// Plain HTTP serves what relying parties fetch by RFC 5280/6960 convention
/// (`/ca/*`, `/crl/*`, `/ocsp`) and `/healthz`. The routes that carry codes,
/// passwords, keys or personal data (applying, enrolling, the emergency
/// report, an application's status) are served on HTTPS, where they need no
/// client certificate; on plain HTTP they redirect or refuse
/// ([`https_only`](crate::http::https_only)).
fn apps(state: &AppState, web: &Web) -> (axum::Router, axum::Router) {
    use crate::http::forwarded::{Listener, identify};
    let (public_api, mtls_api, _) = api::routers(state.clone());
    let desk = Arc::new(state.settings.city_desk.clone());
    let secret = public_api.merge(crate::http::pages::router(state.clone()));
    let behind = middleware::from_fn_with_state(state.clone(), crate::http::rollover::refuse_changes_when_behind);
    let secret = secret.route_layer(behind.clone());
    let guarded =
        secret.clone().route_layer(middleware::from_fn_with_state(web.upgrade.clone(), crate::http::https_only::guard));
    // The responder stays outside the per-request log line and the client
    // layer: at tens of thousands of requests a second they would be its main cost.
    let plain = Listener { proxies: web.proxies.clone(), tls: false };
    let public_app = pki::ca::router(state.clone())
        .merge(health::router(state.clone()))
        .merge(guarded)
        .merge(crate::http::scep::router(state.clone()).route_layer(behind.clone()))
        .fallback(crate::http::error::no_route)
        .layer(body_limit())
        .layer(middleware::from_fn_with_state(desk.clone(), crate::http::contact::fill))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn_with_state(plain, identify))
        .merge(pki::ocsp::router(state.clone(), web.proxies.clone()));
    let tls = Listener { proxies: web.proxies.clone(), tls: true };
    let api_app = mtls_api
        .route_layer(behind.clone())
        .merge(secret)
        .merge(crate::http::console::router(state.clone()).route_layer(behind.clone()))
        .merge(crate::http::est::router(state.clone()).route_layer(behind.clone()))
        .merge(crate::http::scep::router(state.clone()).route_layer(behind))
        .route("/metrics", axum::routing::get(crate::http::metrics::render).with_state(state.clone()))
        .fallback(crate::http::error::no_route)
        .layer(body_limit())
        .layer(middleware::from_fn(crate::http::origin::same_origin))
        .layer(middleware::from_fn(crate::http::read_body_first))
        .layer(middleware::from_fn_with_state(state.clone(), crate::http::origin::audit_refusals))
        .layer(middleware::from_fn(crate::http::origin::strict_transport))
        .layer(middleware::from_fn_with_state(desk, crate::http::contact::fill))
        .layer(middleware::from_fn(log_request))
        .layer(middleware::from_fn_with_state(tls, identify));

    (public_app, api_app)
}

/// How the listeners tell clients apart and send them to HTTPS.
struct Web {
    proxies: Arc<crate::http::forwarded::TrustedProxies>,
    upgrade: Arc<crate::http::https_only::Upgrade>,
}

impl Web {
    fn new(https: &crate::config::HttpsSettings, https_port: u16) -> Self {
        Self {
            proxies: Arc::new(crate::http::forwarded::TrustedProxies::new(https.trusted_proxies.clone())),
            upgrade: Arc::new(crate::http::https_only::Upgrade {
                https_url: https.url.as_ref().map(|u| u.as_str().trim_end_matches('/').to_string()),
                https_port,
            }),
        }
    }
}

/// SIGINT and SIGTERM, registered before anything else happens.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}
