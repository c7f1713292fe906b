//! Clients that connect and stall — sending nothing, headers a byte at a
//! time, or HTTP/2 PINGs and no request — cannot exhaust a listener: each
//! serves a bounded number of connections, gives the slot of an idle one to
//! a newcomer, closes idle ones whatever bytes they exchange, bounds what one
//! source may hold and the age of every connection, so the next real client
//! (the emergency page, a manager) is served.

use std::time::{Duration, Instant};

use std::sync::Arc;

use connect_pki_e2e::client::{self, Req};
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app_with};
use connect_pki_server::net::listen::Limits;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CAP: usize = 4;

/// Fills every slot of the listener at `addr` (and more) with stalled
/// clients: half send nothing, half send the start of a request's headers.
async fn stall(addr: std::net::SocketAddr) -> Vec<TcpStream> {
    let mut stalled = Vec::new();
    for i in 0..CAP * 2 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        if i % 2 == 1 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
        }
        stalled.push(s);
    }
    stalled
}

/// Waits (bounded) until the server has closed every stalled connection.
async fn all_closed(stalled: Vec<TcpStream>) {
    for mut s in stalled {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // an error response before the close
                }
            }
        });
        assert!(read.await.is_ok(), "a stalled connection was still open after 15 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_cannot_exhaust_either_listener() {
    let limits = Limits {
        max_connections: CAP,
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let app = spawn_app_with(Backend::Sqlite, AppOptions::with(|c| c.limits = limits)).await;
    let public = stall(app.public).await;
    let api = stall(app.api).await;
    // Every slot is taken now; the next clients are served once the stalled
    // ones are cut off, within the timeouts (bounded here at 20 s).
    let started = Instant::now();
    let health = tokio::time::timeout(Duration::from_secs(20), app.public(Req::new("GET", "/healthz")))
        .await
        .expect("the public listener served nobody else while stalled clients held it");
    assert_eq!(health.status, 200, "{}", health.text());
    // As any HTTP client does, a request whose kept-alive connection the
    // server closed as it went out (idle, or evicted for a newcomer) is
    // sent again on a new one; what must not happen is no answer at all.
    let served = async {
        loop {
            match app.try_mtls(Some(&app.admin), Req::new("GET", "/api/v1/whoami")).await {
                Ok(reply) => return reply.json(),
                Err(e) => eprintln!("whoami on a closed connection, sent again: {e}"),
            }
        }
    };
    let me = tokio::time::timeout(Duration::from_secs(20), served)
        .await
        .expect("the mTLS listener served nobody else while stalled clients held it");
    assert_eq!(me["login_id"], "admin", "{me}");
    eprintln!("served after {:?} with {} stalled clients on each listener", started.elapsed(), CAP * 2);
    all_closed(public).await;
    all_closed(api).await;
}

/// An HTTP/2 connection over TLS (without a client certificate) from the
/// local address `from` that sends a PING every 200 ms and no request.
async fn pinging(app: &TestApp, from: [u8; 4]) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let mut tls = (*client::tls_config(&app.ca.root_der, None)).clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(std::net::SocketAddr::from((from, 0))).expect("bind");
    let tcp = socket.connect(app.api).await.expect("connect");
    let name = rustls_pki_types::ServerName::IpAddress(app.api.ip().into());
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp).await.expect("handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2 was agreed");
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(200))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// Waits (bounded) until the server closed `conn`.
async fn closed_within(conn: &hyper::client::conn::http2::SendRequest<Empty<Bytes>>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if conn.is_closed() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn h2_get(conn: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>, path: &str) -> Result<u16, String> {
    let req = hyper::Request::builder()
        .uri(format!("https://127.0.0.1{path}"))
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    conn.ready().await.map_err(|e| e.to_string())?;
    let response = conn.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// Eight HTTP/2 connections kept alive with PINGs hold every slot of the
/// HTTPS listener: the emergency page and a manager are still served at
/// once, and every PINGing connection is closed once idle past the timeout.
async fn pinging_http2_connections_hold_nothing(backend: Backend) {
    let limits = Limits {
        max_connections: 8,
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let app = spawn_app_with(backend, AppOptions::with(|c| c.limits = limits)).await;
    let mut held = Vec::new();
    for i in 0..8u8 {
        let mut conn = pinging(&app, [127, 0, 0, 20 + i]).await;
        // One request each, so the idle timeout (not the header one) applies.
        assert_eq!(h2_get(&mut conn, "/emergency").await, Ok(200));
        held.push(conn);
    }
    let page = tokio::time::timeout(Duration::from_secs(5), app.open(Req::new("GET", "/emergency")))
        .await
        .expect("the emergency page did not answer while PINGing connections held every slot");
    assert_eq!(page.status, 200, "{}", page.text());
    let me = tokio::time::timeout(Duration::from_secs(5), app.whoami(&app.admin)).await.expect("a manager is served");
    assert_eq!(me["login_id"], "admin", "{me}");
    for conn in &held {
        assert!(closed_within(conn, Duration::from_secs(6)).await, "a connection sending only PINGs stayed open");
    }
}
both_backends!(pinging_http2_connections_hold_nothing);

/// One source holds at most its share of connections without a client
/// certificate (its longest-idle one makes room for its next), another
/// source has a share of its own, and a connection busy all the time is
/// still asked to finish at its maximum age.
async fn a_source_holds_its_share_and_no_connection_lives_for_ever(backend: Backend) {
    let limits = Limits {
        max_connections_per_source: 2,
        max_connection_age: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let app = spawn_app_with(backend, AppOptions::with(|c| c.limits = limits)).await;
    let mut first = pinging(&app, [127, 0, 0, 30]).await;
    assert_eq!(h2_get(&mut first, "/emergency").await, Ok(200));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut second = pinging(&app, [127, 0, 0, 30]).await;
    assert_eq!(h2_get(&mut second, "/emergency").await, Ok(200));
    let mut third = pinging(&app, [127, 0, 0, 30]).await;
    assert_eq!(h2_get(&mut third, "/emergency").await, Ok(200), "a newcomer from a full source is served");
    assert!(closed_within(&first, Duration::from_secs(2)).await, "the source's longest-idle connection made room");
    let mut elsewhere = pinging(&app, [127, 0, 0, 31]).await;
    assert_eq!(h2_get(&mut elsewhere, "/emergency").await, Ok(200));
    assert!(!second.is_closed() && !third.is_closed(), "another source took nothing from this one");
    // Busy all the time: asked to finish at 2 s all the same.
    let busy = tokio::spawn(async move {
        let started = Instant::now();
        while h2_get(&mut third, "/emergency").await.is_ok() {
            if started.elapsed() > Duration::from_secs(15) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(started.elapsed())
    });
    let lasted = busy.await.expect("task").expect("a connection in constant use outlived its maximum age by 15 s");
    eprintln!("a busy connection was finished after {lasted:?} more");
    drop(second);
}
both_backends!(a_source_holds_its_share_and_no_connection_lives_for_ever);
