//! The mTLS listener: rustls configuration and an accept loop that hands the
//! verified client certificate to each request.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use connect_pki_domain::Serial;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::net::governor::Governor;
use crate::net::listen::{Idle, Limits, Movable, drive};
use crate::net::proxy::Trusted;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

/// What the listener presents and trusts.
pub struct TlsIdentity {
    /// The CA whose device certificates are accepted.
    pub issuing_der: Vec<u8>,
    /// The server certificate and the chain above it.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: TlsKey,
}

/// The key of the server certificate.
pub(crate) enum TlsKey {
    /// Held by rustls (read from a file, or opened from ours).
    Der(PrivateKeyDer<'static>),
    /// In a PKCS#11 token: every handshake asks the token to sign.
    Token(Arc<connect_pki_ca::CaKey>),
}

connect_pki_domain::redacted_debug!(TlsIdentity { issuing_der, chain; key });

impl TlsIdentity {
    /// The server certificate our CA issued at `init`.
    pub fn ours(issuing_der: &[u8], tls_der: &[u8], tls_key: connect_pki_ca::CaKey) -> Self {
        let key = match tls_key.in_memory() {
            Some(k) => TlsKey::Der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.pkcs8_der().to_vec()))),
            None => TlsKey::Token(Arc::new(tls_key)),
        };
        Self {
            issuing_der: issuing_der.to_vec(),
            chain: vec![CertificateDer::from(tls_der.to_vec()), CertificateDer::from(issuing_der.to_vec())],
            key,
        }
    }

    /// A certificate chain and key the operator supplies as PEM files (for
    /// browsers that know only public CAs); client certificates are still
    /// those of our issuing CA.
    pub(crate) fn from_files(
        issuing_der: &[u8],
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> anyhow::Result<Self> {
        use rustls_pki_types::pem::PemObject;
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading the certificate chain {}", cert.display()))?;
        anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading the private key {} (PEM, unencrypted)", key.display()))?;
        Ok(Self { issuing_der: issuing_der.to_vec(), chain, key: TlsKey::Der(key) })
    }
}
use connect_pki_responder::index::key;

/// The server certificate every new handshake presents. The service replaces
/// it when it renews its own certificate; connections already open keep the
/// one they were made with, so there is no moment without a valid one.
pub struct ServerCert {
    current: arc_swap::ArcSwap<rustls::sign::CertifiedKey>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// Issued by our CA at `init` and renewed by us; `false` for the
    /// operator's own files, which the service never replaces.
    pub ours: bool,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert").field("ours", &self.ours).finish_non_exhaustive()
    }
}

impl ServerCert {
    pub fn new(identity: &TlsIdentity, ours: bool) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = Self::certified(identity, &provider)?;
        Ok(Self { current: arc_swap::ArcSwap::from_pointee(key), provider, ours })
    }

    fn certified(
        identity: &TlsIdentity,
        provider: &rustls::crypto::CryptoProvider,
    ) -> anyhow::Result<rustls::sign::CertifiedKey> {
        let context = "the TLS server certificate and key do not go together or are not usable";
        match &identity.key {
            TlsKey::Der(der) => {
                rustls::sign::CertifiedKey::from_der(identity.chain.clone(), der.clone_key(), provider).context(context)
            }
            TlsKey::Token(key) => {
                let signer = Arc::new(TlsTokenKey(key.clone()));
                let certified = rustls::sign::CertifiedKey::new(identity.chain.clone(), signer);
                certified.keys_match().context(context)?;
                Ok(certified)
            }
        }
    }

    /// Presents `identity` from the next handshake on.
    pub(crate) fn replace(&self, identity: &TlsIdentity) -> anyhow::Result<()> {
        self.current.store(Arc::new(Self::certified(identity, &self.provider)?));
        Ok(())
    }

    /// The certificate presented now (DER).
    pub fn leaf_der(&self) -> Vec<u8> {
        self.current.load().cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }
}

impl rustls::server::ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Delay between a certificate becoming invalid and its connections being closed.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_millis(250);

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client certificate of the connection a request came in on, verified
/// against the issuing CA during the handshake.
#[derive(Debug, Clone)]
pub(crate) struct PeerCert {
    pub serial: Serial,
    pub(crate) der: Arc<[u8]>,
    /// Its notAfter (Unix seconds).
    not_after: i64,
}

impl PeerCert {
    fn parse(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let serial = Serial::from_bytes(cert.raw_serial()).ok()?;
        Some(Self { serial, der: Arc::from(der), not_after: cert.validity().not_after.timestamp() })
    }

    /// When the connection must end: the certificate's notAfter, on the
    /// monotonic clock.
    fn expires_in(&self) -> tokio::time::Instant {
        let left = self.not_after - time::OffsetDateTime::now_utc().unix_timestamp();
        tokio::time::Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0))
    }
}

/// Open connections by the serial of their client certificate, so that a
/// revocation can close them at once (keep-alive and HTTP/2 connections are
/// never re-verified otherwise).
#[derive(Default)]
pub struct Connections {
    by_serial: parking_lot::Mutex<std::collections::HashMap<u128, Vec<(u64, CancellationToken)>>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Told of every handshake that let a certificate in.
    observer: Option<HandshakeObserver>,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").finish_non_exhaustive()
    }
}

/// Told of a client-certificate handshake: the serial's index key, whether
/// the certificate got in, and from where (unknown to the verifier).
pub(crate) type HandshakeObserver = Arc<dyn Fn(u128, bool, Option<std::net::IpAddr>) + Send + Sync>;

/// Removes a connection from [`Connections`] when it ends.
struct Registration<'a> {
    connections: &'a Connections,
    serial: u128,
    id: u64,
}

impl Connections {
    /// Connections whose successful handshakes `observer` hears of.
    pub(crate) fn observed(observer: Option<HandshakeObserver>) -> Self {
        Self { observer, ..Self::default() }
    }

    fn register(&self, serial: u128) -> (Registration<'_>, CancellationToken) {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = CancellationToken::new();
        self.by_serial.lock().entry(serial).or_default().push((id, token.clone()));
        (Registration { connections: self, serial, id }, token)
    }

    /// Closes every open connection authenticated with `serial`, after
    /// [`CLOSE_GRACE`]: long enough for the response to the request that made
    /// the change (a device renewing or revoking its own certificate) to be
    /// written, far inside the 1 s promised. Requests arriving meanwhile are
    /// refused by the API's per-request status check.
    pub(crate) fn close(&self, serial: u128) {
        if let Some(conns) = self.by_serial.lock().remove(&serial) {
            tracing::info!(
                serial = format!("{serial:x}"),
                connections = conns.len(),
                "closing connections of a revoked certificate"
            );
            tokio::spawn(async move {
                tokio::time::sleep(CLOSE_GRACE).await;
                for (_, token) in conns {
                    token.cancel();
                }
            });
        }
    }
}

impl connect_pki_responder::Sessions for Connections {
    fn close(&self, serial: u128) {
        Connections::close(self, serial);
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut map = self.connections.by_serial.lock();
        if let Some(list) = map.get_mut(&self.serial) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(&self.serial);
            }
        }
    }
}

/// webpki's client verifier plus the live index: a certificate that is not
/// valid in the index (revoked, held, superseded) fails the handshake from
/// the moment the index says so. rustls's own verifier only knows CRLs given
/// at build time.
pub(crate) struct LiveVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    index: Option<Arc<CertIndexRef>>,
}

impl std::fmt::Debug for LiveVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveVerifier").field("live", &self.index.is_some()).finish_non_exhaustive()
    }
}

/// What the verifier reads: the index of the running service.
pub type CertIndexRef = dyn Fn(&[u8]) -> Option<connect_pki_domain::CertStatus> + Send + Sync;

impl LiveVerifier {
    /// Checks against `status_of(serial)`; `None` only checks the chain.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, status_of: Option<Arc<CertIndexRef>>) -> Self {
        Self { inner, index: status_of }
    }
}

impl LiveVerifier {
    fn check_status(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let Some(status_of) = &self.index else { return Ok(()) };
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
        match status_of(cert.raw_serial()) {
            Some(connect_pki_domain::CertStatus::Valid) => Ok(()),
            // Our CA signed it and the database does not know it (restored
            // from before it was issued, a replica that missed it): it may
            // have been revoked since, so it fails closed.
            None => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownRevocationStatus)),
            Some(_) => Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)),
        }
    }
}

impl ClientCertVerifier for LiveVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The chain only: the status is looked up once the client has proved
        // its key (below), so that a refusal the incident record counts was
        // made by the key's holder, not by anyone who copied the certificate
        // off a CRL's serial list or an old capture.
        self.inner.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let proved = self.inner.verify_tls12_signature(message, cert, dss)?;
        self.check_status(cert)?;
        Ok(proved)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let proved = self.inner.verify_tls13_signature(message, cert, dss)?;
        self.check_status(cert)?;
        Ok(proved)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Which of the CA certificates `cas` issued `cert` (its issuer is that CA's subject).
pub(crate) fn issuer_among<'a>(cert: &[u8], cas: &'a [Vec<u8>]) -> Option<&'a [u8]> {
    let (_, leaf) = x509_parser::parse_x509_certificate(cert).ok()?;
    cas.iter()
        .find(|ca| {
            x509_parser::parse_x509_certificate(ca).is_ok_and(|(_, c)| c.subject().as_raw() == leaf.issuer().as_raw())
        })
        .map(Vec::as_slice)
}

/// A status lookup over the service's index, for [`LiveVerifier`]. While the
/// index is stale (the feed unreadable past its bound) every certificate
/// reads as held: new handshakes fail closed until it catches up. A
/// certificate refused for its status is reported to `observer`.
pub(crate) fn index_lookup(
    revocations: Arc<connect_pki_responder::Revocations>,
    observer: Option<HandshakeObserver>,
) -> Arc<CertIndexRef> {
    Arc::new(move |serial: &[u8]| {
        let status = if revocations.is_stale() {
            Some(connect_pki_domain::CertStatus::OnHold)
        } else {
            revocations.index.get(serial).map(|e| e.status)
        };
        if let (Some(observe), Some(s), Some(k)) = (&observer, status, key(serial))
            && s != connect_pki_domain::CertStatus::Valid
        {
            observe(k, false, None);
        }
        status
    })
}

/// The rustls configuration of the mTLS listener, presenting `cert`.
///
/// Client certificates are verified by webpki against the issuing CA, then
/// against the live index (`status_of`). A connection without one is still
/// accepted, so that the API can answer with a JSON error saying a
/// certificate is needed instead of a bare TLS alert; every API route then
/// requires one.
pub fn server_config(
    issuing_ders: &[Vec<u8>],
    cert: Arc<ServerCert>,
    status_of: Option<Arc<CertIndexRef>>,
    allow_tls12: bool,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    // Every issuing CA generation: devices of an older one keep working
    // after a rollover until their certificates run out.
    for der in issuing_ders {
        roots.add(CertificateDer::from(der.clone())).context("issuing CA certificate")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("client certificate verifier")?;
    let verifier = Arc::new(LiveVerifier::new(verifier, status_of));
    // TLS 1.2 sends the client certificate, and with it who is calling, in clear.
    let versions: &[&rustls::SupportedProtocolVersion] =
        if allow_tls12 { &[&rustls::version::TLS13, &rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Session resumption skips client-certificate verification; without it,
    // every connection presents and proves its certificate afresh.
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// What the HTTPS listener serves, and with what.
pub(crate) struct TlsListener {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) app: Router,
    /// Open connections by certificate, for revocations to close.
    pub(crate) connections: Arc<Connections>,
    pub(crate) status_of: Option<Arc<CertIndexRef>>,
    pub(crate) limits: Limits,
    /// Peers whose PROXY protocol header names the client.
    pub(crate) proxies: Trusted,
    /// Where a connection that showed one of our client certificates is
    /// served: the threads of the revocation path. The listener accepts and
    /// handshakes on the threads strangers share (lower priority), so a
    /// flood of handshakes or anonymous requests queues behind a manager's
    /// revoke, not before it. `None`: where the listener runs.
    pub(crate) home: Option<tokio::runtime::Handle>,
}

/// Slots of the HTTPS listener kept for connections with one of our client
/// certificates: an eighth, so that managers and 行政管理課 can act while
/// strangers hold the rest.
fn reserved(limits: &Limits) -> usize {
    (limits.max_connections / 8).max(1)
}

/// Accepts TLS connections until `shutdown` fires, then lets open requests
/// finish. Connections are registered under their certificate's serial in
/// `connections` so that a revocation can close them.
pub(crate) async fn serve(listener: TcpListener, l: TlsListener, shutdown: CancellationToken) {
    let acceptor = TlsAcceptor::from(l.config.clone());
    let governor = Governor::with_arrival_limit("https", l.limits, reserved(&l.limits)).trusting(l.proxies.clone());
    tokio::spawn(governor.clone().sweep(shutdown.clone()));
    let tasks = TaskTracker::new();
    let builder = crate::net::listen::builder(&l.limits);
    let l = Arc::new(l);
    while let Some((tcp, peer)) = crate::net::listen::accept(&listener, &shutdown).await {
        let (acceptor, builder, l, governor, shutdown) =
            (acceptor.clone(), builder.clone(), l.clone(), governor.clone(), shutdown.clone());
        tasks.spawn(async move { connection(tcp, peer, acceptor, builder, l, &governor, &shutdown).await });
    }
    drop(listener);
    crate::net::listen::finish(tasks, "mTLS").await;
}
/// One connection of the HTTPS listener, from the PROXY header to its end.
async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    builder: Builder<TokioExecutor>,
    l: Arc<TlsListener>,
    governor: &Arc<Governor>,
    shutdown: &CancellationToken,
) {
    let remote =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, crate::net::proxy::client_of(&mut tcp, peer, &l.proxies)).await {
            Ok(Ok(remote)) => remote,
            Ok(Err(e)) => return tracing::info!(%peer, error = %e, "PROXY protocol header refused"),
            Err(_) => return tracing::info!(%peer, "no PROXY protocol header in time"),
        };
    let Some(admitted) = governor.admit(remote.ip(), shutdown) else { return };
    let io = Idle::new(Movable::new(tcp), l.limits.idle_timeout);
    let handshake = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)) => r,
        () = admitted.close.cancelled() => return,
    };
    let mut tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return tracing::info!(%remote, error = %e, "TLS handshake refused"),
        Err(_) => return tracing::info!(%remote, "TLS handshake timed out"),
    };
    admitted.handshaken();
    let peer_cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| PeerCert::parse(c));
    match &peer_cert {
        Some(p) => admitted.certified(p.expires_in()),
        None if !admitted.may_stay_anonymous() => {
            return tracing::info!(%remote, "connection closed: the slots left are kept for client certificates");
        }
        None => {}
    }
    let home = l.home.clone().filter(|_| peer_cert.is_some());
    let Some(home) = home else { return serve_tls(tls, peer_cert, admitted, remote, builder, &l).await };
    let tcp = match tls.get_mut().0.get_mut().leave() {
        Ok(tcp) => tcp,
        Err(e) => return tracing::warn!(%remote, error = %e, "a connection could not move to the API's threads"),
    };
    let moved = home.spawn(async move {
        let io = tls.get_mut().0;
        if let Err(e) = io.get_mut().arrive(tcp) {
            return tracing::warn!(%remote, error = %e, "a connection could not move to the API's threads");
        }
        io.rearm();
        serve_tls(tls, peer_cert, admitted, remote, builder, &l).await;
    });
    // Held until the connection ends, so that shutdown waits for it.
    let _ = moved.await;
}

/// Serves one handshaken connection until it ends. Connections are
/// registered under their certificate's serial so that a revocation can
/// close them.
async fn serve_tls(
    tls: tokio_rustls::server::TlsStream<Idle<Movable>>,
    peer_cert: Option<PeerCert>,
    admitted: crate::net::governor::Admitted,
    remote: SocketAddr,
    builder: Builder<TokioExecutor>,
    l: &TlsListener,
) {
    let registered = peer_cert.as_ref().and_then(|p| key(p.serial.as_bytes())).map(|k| l.connections.register(k));
    // A revocation applied between the handshake's check and the
    // registration above closed nothing: look again now that any later one
    // will find this connection.
    if let (Some(p), Some(status_of)) = (&peer_cert, &l.status_of)
        && status_of(p.serial.as_bytes()).is_some_and(|s| s != connect_pki_domain::CertStatus::Valid)
    {
        return tracing::info!(%remote, "connection closed: certificate revoked during the handshake");
    }
    if let (Some((r, _)), Some(observe)) = (&registered, &l.connections.observer) {
        observe(r.serial, true, Some(remote.ip().to_canonical()));
    }
    let admitted = Arc::new(admitted);
    let service = crate::net::listen::counted(l.app.clone(), admitted.clone(), remote, move |ext| {
        if let Some(p) = &peer_cert {
            ext.insert(p.clone());
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    // Dropping the connection closes the socket at once: a lost laptop
    // does not keep the session it already had.
    drive(conn, &admitted, registered.as_ref().map(|(_, revoked)| revoked), remote.ip()).await;
    drop(registered);
}

/// The TLS server key as rustls signs with it when the key is in a token:
/// each handshake's signature is made by the token.
#[derive(Debug)]
pub(crate) struct TlsTokenKey(pub(crate) Arc<connect_pki_ca::CaKey>);

#[derive(Debug)]
struct TlsTokenSigner(Arc<connect_pki_ca::CaKey>, rustls::SignatureScheme);

impl rustls::sign::SigningKey for TlsTokenKey {
    fn choose_scheme(&self, offered: &[rustls::SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        let alg = rcgen::PublicKeyData::algorithm(&*self.0);
        let scheme = if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            rustls::SignatureScheme::ECDSA_NISTP384_SHA384
        } else {
            rustls::SignatureScheme::ECDSA_NISTP256_SHA256
        };
        offered.contains(&scheme).then(|| Box::new(TlsTokenSigner(self.0.clone(), scheme)) as Box<_>)
    }

    fn public_key(&self) -> Option<rustls_pki_types::SubjectPublicKeyInfoDer<'_>> {
        Some(self.0.public_key_der().into())
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        rustls::SignatureAlgorithm::ECDSA
    }
}

impl rustls::sign::Signer for TlsTokenSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        rcgen::SigningKey::sign(&*self.0, message).map_err(|e| rustls::Error::General(e.to_string()))
    }

    fn scheme(&self) -> rustls::SignatureScheme {
        self.1
    }
}
