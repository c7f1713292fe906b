//! Clients that connect and stall — sending nothing, or headers a byte at a
//! time, on either listener — cannot exhaust it: each listener serves a
//! bounded number of connections and closes silent or slow ones, so the
//! next real client is served.

use std::time::{Duration, Instant};

use connect_pki_e2e::client::Req;
use connect_pki_e2e::{AppOptions, Backend, spawn_app_with};
use connect_pki_server::net::listen::Limits;
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
    let me = tokio::time::timeout(Duration::from_secs(20), app.whoami(&app.admin))
        .await
        .expect("the mTLS listener served nobody else while stalled clients held it");
    assert_eq!(me["login_id"], "admin", "{me}");
    eprintln!("served after {:?} with {} stalled clients on each listener", started.elapsed(), CAP * 2);
    all_closed(public).await;
    all_closed(api).await;
}
