//! Hostile load (issue 24): what strangers on the network do to the service
//! while a manager revokes and 行政管理課's emergency page is asked for, on
//! the release binary with its default limits. For `SECONDS`, all at once
//! and all from loopback addresses:
//!
//! * 1 000 HTTP/2 connections without a certificate, from 16 addresses, that
//!   send a PING every second and no request, reconnecting when closed;
//! * an OCSP flood from 256 addresses in 256 /24s, each request naming 64
//!   certificates (a different one first each time), as fast as answered;
//! * wrong enrollment codes from 256 more addresses, as fast as answered.
//!
//! Measured: the revoke call's latency (a revocation every 50 ms), the
//! emergency page (a new connection every 200 ms: answered with 200 within
//! 5 s, of asked), the server's peak resident memory, and the relying-party
//! rows at the end against their cap. Every task stops at the deadline.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use der::{Decode, Encode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{Value, json};

use crate::setup::{Cert, Env, Running, measure};

/// Seconds of hostile load.
const SECONDS: u64 = 30;
/// The unnamed relying-party rows kept (the service's flag).
const ROW_CAP: u32 = 5_000;

#[derive(Default)]
struct Counts {
    h2_connections: AtomicU64,
    ocsp_answered: AtomicU64,
    ocsp_try_later: AtomicU64,
    ocsp_failed: AtomicU64,
    codes_refused: AtomicU64,
    codes_limited: AtomicU64,
    codes_failed: AtomicU64,
}

fn loopback(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

async fn connect_from(from: IpAddr, to: &str) -> anyhow::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(to.parse()?).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn tls_from(
    server: &Running,
    from: IpAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = connect_from(from, &server.api).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
    Ok(tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await?)
}

/// One HTTP/2 connection that only PINGs, opened again whenever the server
/// closes it, until `until`.
async fn pinger(server: Arc<Running>, from: IpAddr, counts: Arc<Counts>, until: Instant) {
    let mut cfg = (*server.anonymous()).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let cfg = Arc::new(cfg);
    while Instant::now() < until {
        let Ok(stream) = tls_from(&server, from, cfg.clone()).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await;
        let Ok((sender, conn)) = handshake else { continue };
        counts.h2_connections.fetch_add(1, Ordering::Relaxed);
        let left = until.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left, conn).await;
        drop(sender);
    }
}

/// An OCSP request naming 64 certificates, `first` first.
fn many_cert_ids(requests: &[Vec<u8>], first: usize) -> anyhow::Result<Vec<u8>> {
    let mut req = x509_ocsp::OcspRequest::from_der(&requests[first % requests.len()])?;
    for i in 1..64 {
        let other = x509_ocsp::OcspRequest::from_der(&requests[(first + i * 7919) % requests.len()])?;
        req.tbs_request.request_list.extend(other.tbs_request.request_list);
    }
    Ok(req.to_der()?)
}

async fn ocsp_flooder(
    server: Arc<Running>,
    from: IpAddr,
    requests: Arc<Vec<Vec<u8>>>,
    counts: Arc<Counts>,
    until: Instant,
    seed: usize,
) {
    let mut n = seed * 1_000;
    while Instant::now() < until {
        let Ok(tcp) = connect_from(from, &server.public).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(mut sender) = crate::setup::http1(tcp).await else { continue };
        while Instant::now() < until {
            n += 1;
            let Ok(body) = many_cert_ids(&requests, n) else { return };
            match crate::setup::send(&mut sender, "POST", "/ocsp", "application/ocsp-request", body).await {
                Ok((200, answer)) => {
                    // tryLater is the 5-byte unsigned response 30 03 0a 01 03.
                    let c = if answer.as_ref() == [0x30, 0x03, 0x0a, 0x01, 0x03] {
                        &counts.ocsp_try_later
                    } else {
                        &counts.ocsp_answered
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) | Err(_) => {
                    counts.ocsp_failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

async fn code_guesser(server: Arc<Running>, from: IpAddr, counts: Arc<Counts>, until: Instant) {
    let mut n = 0u32;
    while Instant::now() < until {
        let Ok(stream) = tls_from(&server, from, server.anonymous()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(mut sender) = crate::setup::http1(stream).await else { continue };
        while Instant::now() < until {
            n += 1;
            let body = json!({"code": format!("0000-0000-{:04}-0000", n % 10_000), "generate_key": true}).to_string();
            match crate::setup::send(&mut sender, "POST", "/api/v1/enroll", "application/json", body.into_bytes()).await
            {
                Ok((401, _)) => counts.codes_refused.fetch_add(1, Ordering::Relaxed),
                Ok((429, _)) => counts.codes_limited.fetch_add(1, Ordering::Relaxed),
                Ok(_) | Err(_) => {
                    counts.codes_failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
        }
    }
}

/// The emergency page on a new connection every 200 ms: (asked, answered).
async fn emergency_page(server: Arc<Running>, until: Instant) -> (u64, u64) {
    let (mut asked, mut answered) = (0, 0);
    while Instant::now() < until {
        asked += 1;
        let attempt = async {
            let stream = tls_from(&server, loopback(0, 0, 1), server.anonymous()).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let req = hyper::Request::builder()
                .uri("/emergency")
                .header("host", "127.0.0.1")
                .body(Full::new(Bytes::new()))?;
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            resp.into_body().collect().await?;
            anyhow::Ok(status)
        };
        if let Ok(Ok(200)) = tokio::time::timeout(Duration::from_secs(5), attempt).await {
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (asked, answered)
}

/// Resident memory of process `pid` (VmRSS), in bytes.
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().to_string()))
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Unnamed relying-party rows (OCSP and CRL tables) in the benchmark's database.
async fn unnamed_rows(env: &Env) -> anyhow::Result<i64> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&env.database_url()).await?;
    let mut n = 0;
    for table in ["rp_ocsp", "rp_crl"] {
        let row =
            sqlx::query(&format!("select count(*) as n from {table} where party like '%/24' or party like '%/64'"))
                .fetch_one(&mut conn)
                .await?;
        n += row.try_get::<i64, _>("n")?;
    }
    Ok(n)
}

/// The load: 1 000 pingers, 256 OCSP flooders and 256 code guessers, all
/// stopping at `until`.
fn start_load(
    server: &Arc<Running>,
    requests: &Arc<Vec<Vec<u8>>>,
    counts: &Arc<Counts>,
    until: Instant,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1_000usize {
        let from = loopback(3, 0, 1 + (i % 16) as u8);
        tasks.spawn(pinger(server.clone(), from, counts.clone(), until));
    }
    for i in 0..=255u8 {
        let flood =
            ocsp_flooder(server.clone(), loopback(4, i, 1), requests.clone(), counts.clone(), until, usize::from(i));
        tasks.spawn(flood);
        tasks.spawn(code_guesser(server.clone(), loopback(5, i, 1), counts.clone(), until));
    }
    tasks
}

/// Peak VmRSS of process `pid` until `until`.
async fn peak_rss(pid: u32, until: Instant) -> u64 {
    let mut peak = 0;
    while Instant::now() < until {
        peak = peak.max(rss_of(pid));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    peak
}

pub async fn hostile(env: &Env, devices: &[Cert]) -> anyhow::Result<Value> {
    let cap = ROW_CAP.to_string();
    // The defaults a deployment has, not the ones the other sections lift.
    let flags = [
        "--max-connections-per-source",
        "64",
        "--new-connections-per-source-per-minute",
        "600",
        "--ocsp-rate-limit-per-minute",
        "1200",
        "--rate-limit-per-minute",
        "30",
        "--relying-party-unnamed-rows",
        &cap,
        "--relying-party-flush-seconds",
        "1",
    ];
    let server = Arc::new(env.serve_with("hostile-ready.json", &flags)?);
    let requests = Arc::new(env.ocsp_requests()?);
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs(SECONDS);
    let (load, nice) = load_threads()?;
    let mut tasks = {
        let _on = load.enter();
        start_load(&server, &requests, &counts, until)
    };
    let page = tokio::spawn(emergency_page(server.clone(), until));
    let peak = tokio::spawn(peak_rss(server.pid(), until));
    // Let the load build up, then revoke every 50 ms until it stops.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut admin = server.admin().await?;
    let mut took = Vec::new();
    for dev in devices {
        if Instant::now() + Duration::from_millis(500) > until {
            break;
        }
        let t0 = Instant::now();
        measure::revoke(&mut admin, dev).await.context("a revoke call under hostile load")?;
        took.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (asked, answered) = page.await?;
    let peak = peak.await?;
    while tasks.join_next().await.is_some() {}
    load.shutdown_background();
    // The last counts are written within a flush (1 s) and trimmed after it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = unnamed_rows(env).await?;
    let mut r = report(&counts, &mut took, (asked, answered), peak, rows);
    r["load_nice"] = nice.into();
    Ok(r)
}

/// How much lower the load generator's threads run (`nice`), from
/// `BENCH_LOAD_NICE` (default 0: the same priority as the service).
///
/// The generator stands for other machines on the network: their CPU is
/// not the service's in the field. On this machine it shares the service's
/// two cores; `BENCH_LOAD_NICE=10` runs it at the priority the service
/// gives strangers' work, as if the load came from elsewhere, to tell how
/// much of a figure is the generator's (on 2c10b60: little, p99 31 ms
/// against 26–28 ms at the default).
fn load_threads() -> anyhow::Result<(tokio::runtime::Runtime, i32)> {
    let nice = std::env::var("BENCH_LOAD_NICE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .on_thread_start(move || {
            // Per thread on Linux; lowering one's own priority needs no privilege.
            let _ = rustix::process::setpriority_process(None, nice);
        })
        .enable_all()
        .build()?;
    Ok((runtime, nice))
}

/// The figures of one run, also printed.
fn report(counts: &Counts, took: &mut [f64], (asked, answered): (u64, u64), peak: u64, rows: i64) -> Value {
    let pct = crate::percentile;
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let r = json!({
        "seconds": SECONDS,
        "h2_pinging_connections": 1000,
        "h2_connections_opened": c(&counts.h2_connections),
        "ocsp_sources": 256,
        "ocsp_answered": c(&counts.ocsp_answered),
        "ocsp_try_later": c(&counts.ocsp_try_later),
        "ocsp_failed": c(&counts.ocsp_failed),
        "code_sources": 256,
        "codes_refused": c(&counts.codes_refused),
        "codes_rate_limited": c(&counts.codes_limited),
        "codes_failed": c(&counts.codes_failed),
        "revokes": took.len(),
        "revoke_p50_ms": pct(took, 0.5),
        "revoke_p99_ms": pct(took, 0.99),
        "emergency_asked": asked,
        "emergency_answered": answered,
        "peak_rss_mib": peak as f64 / (1024.0 * 1024.0),
        "unnamed_rows": rows,
        "unnamed_row_cap_per_table": ROW_CAP,
    });
    eprintln!(
        "   revoke p50 {:.1} / p99 {:.1} ms ({} calls); emergency page {answered}/{asked}; peak RSS {:.0} MiB; unnamed relying-party rows {rows} (cap {ROW_CAP} per table); {} h2 connections opened, OCSP {} answered / {} tryLater, codes {} refused / {} rate-limited",
        r["revoke_p50_ms"].as_f64().unwrap_or(0.0),
        r["revoke_p99_ms"].as_f64().unwrap_or(0.0),
        took.len(),
        r["peak_rss_mib"].as_f64().unwrap_or(0.0),
        r["h2_connections_opened"],
        r["ocsp_answered"],
        r["ocsp_try_later"],
        r["codes_refused"],
        r["codes_rate_limited"],
    );
    r
}

/// The README row.
pub fn row(r: &Value) -> String {
    let x = &r["hostile"];
    if x.is_null() {
        return String::new();
    }
    let f = |k: &str| x[k].as_f64().unwrap_or(0.0);
    format!(
        "| hostile load for {} s: 1 000 PINGing HTTP/2 connections, OCSP of 64 CertIDs from 256 addresses, wrong codes from 256 more | revoke p50 {:.1} ms, p99 {:.1} ms; emergency page {}/{}; peak RSS {:.0} MiB; unnamed relying-party rows {} (cap {} per table) | — | revoke p99 < 50 ms, page 100 %, RSS < 200 MiB, rows ≤ cap |\n",
        x["seconds"],
        f("revoke_p50_ms"),
        f("revoke_p99_ms"),
        x["emergency_answered"],
        x["emergency_asked"],
        f("peak_rss_mib"),
        x["unnamed_rows"],
        x["unnamed_row_cap_per_table"],
    )
}
