//! The accept loops around HTTP: accepting, hyper's connection builder
//! with the header deadline, the service each connection runs (every
//! request counted as in flight for `governor`), a byte-level idle timeout
//! for a request whose body or answer stalls, and the orderly end of a
//! connection asked to finish. Who may hold a slot, and for how long, is
//! `governor`'s.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

pub use crate::config::Limits;

use crate::net::governor::{Admitted, DRAIN_GRACE, Governor};

/// hyper's connection builder with the header deadline armed (hyper only
/// enforces it with a timer installed).
pub(crate) fn builder(limits: &Limits) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    b.http2().timer(TokioTimer::new());
    b
}

/// `app` as the service of one connection from `remote`: each request
/// carries the address (and what `extend` adds) and is in flight, for
/// [`Governor`]'s idea of idleness, until it is answered.
pub(crate) fn counted(
    app: Router,
    admitted: Arc<Admitted>,
    remote: std::net::SocketAddr,
    extend: impl Fn(&mut axum::http::Extensions) + Clone + Send + Sync + 'static,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        extend(req.extensions_mut());
        req.extensions_mut().insert(axum::extract::ConnectInfo(remote));
        let busy = admitted.request();
        let answer = app.clone().oneshot(req);
        async move {
            let r = answer.await;
            drop(busy);
            r
        }
    })
}

/// Serves one connection until it ends, `close` or `also_close` fires (it is
/// dropped at once), or `admitted.drain` fires (it is asked to finish and
/// given [`DRAIN_GRACE`]).
pub(crate) async fn drive<C>(conn: C, admitted: &Admitted, also_close: Option<&CancellationToken>, remote: IpAddr)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let never = CancellationToken::new();
    let also_close = also_close.unwrap_or(&never);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            return;
        }
        () = admitted.close.cancelled() => return,
        () = also_close.cancelled() => {
            tracing::info!(%remote, "connection closed: certificate no longer valid");
            return;
        }
        () = admitted.drain.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        () = admitted.close.cancelled() => {}
        () = also_close.cancelled() => {}
        () = tokio::time::sleep(DRAIN_GRACE) => {}
    }
}

/// A stream that fails with `TimedOut` once nothing has been read or
/// written for the idle timeout (a request whose body or answer stalls).
pub(crate) struct Idle<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self { inner, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn touch(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Starts the timeout afresh on the timer of the runtime this is called
    /// on (a timer belongs to the runtime it was made on; see [`Movable`]).
    pub fn rearm(&mut self) {
        self.deadline = Box::pin(tokio::time::sleep(self.timeout));
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP stream that can move to another runtime between two reads: a
/// connection accepted and handshaken on the threads strangers share is
/// served, once it has shown one of our client certificates, on the
/// threads of the revocation path (`tls::connection`). A socket is woken by
/// the reactor it is registered with; left with the busy one, a manager's
/// revoke would wait for those threads to poll it.
pub(crate) struct Movable(Option<tokio::net::TcpStream>);

impl Movable {
    pub fn new(tcp: tokio::net::TcpStream) -> Self {
        Self(Some(tcp))
    }

    /// Takes the socket off its runtime's reactor.
    pub fn leave(&mut self) -> std::io::Result<std::net::TcpStream> {
        self.0.take().ok_or_else(gone)?.into_std()
    }

    /// Registers the socket with the reactor of the runtime this is called on.
    pub fn arrive(&mut self, tcp: std::net::TcpStream) -> std::io::Result<()> {
        self.0 = Some(tokio::net::TcpStream::from_std(tcp)?);
        Ok(())
    }

    fn tcp(&mut self) -> std::io::Result<Pin<&mut tokio::net::TcpStream>> {
        self.0.as_mut().map(Pin::new).ok_or_else(gone)
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "the socket is moving between runtimes")
}

impl AsyncRead for Movable {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.tcp()?.poll_read(cx, buf)
    }
}

impl AsyncWrite for Movable {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.tcp()?.poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp()?.poll_shutdown(cx)
    }
}

/// Accepts the next connection; `None` at shutdown.
pub(crate) async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    // An answer goes out in more than one segment (the TLS
                    // records of head and body); with Nagle's algorithm the
                    // last waits for the client's delayed ACK, up to 40 ms.
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "TCP_NODELAY could not be set");
                    }
                    return Some((tcp, remote));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = shutdown.cancelled() => return None,
        }
    }
}

/// Waits (bounded) for the connection tasks of a listener that stopped accepting.
pub(crate) async fn finish(tasks: TaskTracker, listener: &str) {
    tasks.close();
    if tokio::time::timeout(DRAIN_GRACE, tasks.wait()).await.is_err() {
        tracing::warn!("some {listener} connections did not finish within 10 s of shutdown");
    }
}

/// Serves plain HTTP (the public listener) until `shutdown`, then lets open
/// requests finish.
pub(crate) async fn serve_plain(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    proxies: crate::net::proxy::Trusted,
    shutdown: CancellationToken,
) {
    // A relying party behind a trusted proxy reaches us over the proxy's
    // connections: held to no per-source share.
    let governor = Governor::new("public", limits, 0).trusting(proxies);
    tokio::spawn(governor.clone().sweep(shutdown.clone()));
    let tasks = TaskTracker::new();
    let builder = builder(&limits);
    while let Some((tcp, remote)) = accept(&listener, &shutdown).await {
        let Some(admitted) = governor.admit(remote.ip(), &shutdown) else { continue };
        let app = app.clone();
        let builder = builder.clone();
        tasks.spawn(async move {
            let admitted = Arc::new(admitted);
            let service = counted(app, admitted.clone(), remote, |_| {});
            let io = TokioIo::new(Idle::new(tcp, limits.idle_timeout));
            let conn = builder.serve_connection_with_upgrades(io, service);
            drive(conn, &admitted, None, remote.ip()).await;
        });
    }
    drop(listener);
    finish(tasks, "public").await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection accepted on one runtime keeps working on another once
    /// the first is gone: its socket left the first reactor and its idle
    /// timer the first timer (either would fail or panic otherwise).
    #[test]
    fn a_moved_connection_outlives_the_runtime_that_accepted_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let mut client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        std::io::Write::write_all(&mut client, b"hello").expect("write");
        let first = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let (mut io, tcp) = first.block_on(async {
            let listener = TcpListener::from_std(listener).expect("listener");
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut io = Idle::new(Movable::new(tcp), Duration::from_secs(30));
            let mut hello = [0u8; 5];
            io.read_exact(&mut hello).await.expect("read on the first runtime");
            assert_eq!(&hello, b"hello");
            let tcp = io.get_mut().leave().expect("leave");
            (io, tcp)
        });
        drop(first);
        std::io::Write::write_all(&mut client, b"world").expect("write");
        let second = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        second.block_on(async {
            io.get_mut().arrive(tcp).expect("arrive");
            io.rearm();
            let mut world = [0u8; 5];
            io.read_exact(&mut world).await.expect("read on the second runtime");
            assert_eq!(&world, b"world");
            io.write_all(b"ok").await.expect("write on the second runtime");
        });
        let mut ok = [0u8; 2];
        std::io::Read::read_exact(&mut client, &mut ok).expect("the answer");
        assert_eq!(&ok, b"ok");
    }

    #[tokio::test]
    async fn a_stream_between_runtimes_refuses_io() {
        let mut io = Movable(None);
        let mut buf = [0u8; 1];
        let e = io.read(&mut buf).await.expect_err("no socket");
        assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
    }
}
