//! What the benchmark measures on a running instance: how soon a revoked
//! certificate is refused, and what the live check costs a handshake.

use super::*;

/// Revokes devices one by one and, right after each revoke call returns,
/// tries a handshake with the revoked certificate.
pub async fn refusal_bench(env: &Env, devices: &[Cert], server: &Running) -> anyhow::Result<Value> {
    refusal_across(env, devices, server, server).await
}

/// Revokes `devices` through `caller`'s instance and measures until
/// `server`'s instance refuses the revoked certificate (the same instance, or
/// another one sharing the database). Each attempt is a new mTLS connection
/// and a `GET /api/v1/whoami`. Two moments are recorded: the first refusal of
/// either kind (the handshake fails, or the API answers 401 from its
/// per-request check of the certificate in the database), and the first
/// refused handshake, which is the instance's own revocation index saying
/// "revoked" (the index is also what its OCSP responder and CRL read).
pub async fn refusal_across(env: &Env, devices: &[Cert], caller: &Running, server: &Running) -> anyhow::Result<Value> {
    let _ = (&server.roots, &server.issuing, &caller.key);
    let mut admin = caller.admin().await?;
    let mut refusals = Refusals::default();
    let across = !std::ptr::eq(caller, server);
    let mut jitter = 0x9e37_79b9_u32;
    for dev in devices {
        let cfg = env.client_config(dev)?;
        if across {
            // Revocations at random moments relative to the other instance's
            // feed poll, so the figure is not phase-locked to it.
            jitter = jitter.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            tokio::time::sleep(Duration::from_millis(u64::from(jitter >> 25))).await;
        }
        let t0 = Instant::now();
        revoke(&mut admin, dev).await?;
        let t1 = Instant::now();
        let t2 = until_refused(server, &cfg, t0, t1, &mut refusals).await?;
        refusals.from_call.push((t2 - t0).as_secs_f64() * 1000.0);
        refusals.after_response.push((t2 - t1).as_secs_f64() * 1000.0);
    }
    let r = refusals.summary(devices.len());
    eprintln!("   {r}");
    Ok(r)
}

/// Delays in milliseconds, and how the first refusals came.
#[derive(Default)]
struct Refusals {
    from_call: Vec<f64>,
    after_response: Vec<f64>,
    index_from_call: Vec<f64>,
    index_after_response: Vec<f64>,
    first_attempt: usize,
    first_by_request: usize,
}

impl Refusals {
    fn summary(mut self, revocations: usize) -> Value {
        let pct = crate::percentile;
        json!({
            "revocations": revocations,
            "first_attempt_refused": self.first_attempt,
            "first_refusal_by_api_check": self.first_by_request,
            "from_call_p50_ms": pct(&mut self.from_call, 0.5),
            "from_call_p99_ms": pct(&mut self.from_call, 0.99),
            "after_response_p50_ms": pct(&mut self.after_response, 0.5),
            "after_response_p99_ms": pct(&mut self.after_response, 0.99),
            "handshake_refused_from_call_p50_ms": pct(&mut self.index_from_call, 0.5),
            "handshake_refused_from_call_p99_ms": pct(&mut self.index_from_call, 0.99),
            "handshake_refused_after_response_p50_ms": pct(&mut self.index_after_response, 0.5),
            "handshake_refused_after_response_p99_ms": pct(&mut self.index_after_response, 0.99),
            "handshake_refused_after_response_max_ms": pct(&mut self.index_after_response, 1.0),
        })
    }
}

pub(crate) async fn revoke(admin: &mut serve::Sender, dev: &Cert) -> anyhow::Result<()> {
    let (status, body) = send(
        admin,
        "POST",
        &format!("/api/v1/certificates/{}/revoke", dev.serial),
        "application/json",
        br#"{"reason":"keyCompromise"}"#.to_vec(),
    )
    .await?;
    if status != 200 {
        bail!("revoke answered {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// Tries `server` with the revoked certificate until a handshake is refused
/// (recorded in `refusals`, as is how the first refusal of either kind
/// came); returns the moment of that first refusal (`t1` if none came).
async fn until_refused(
    server: &Running,
    cfg: &Arc<rustls::ClientConfig>,
    t0: Instant,
    t1: Instant,
    refusals: &mut Refusals,
) -> anyhow::Result<Instant> {
    let mut attempts = 0;
    let mut first: Option<Instant> = None;
    loop {
        attempts += 1;
        let answer = whoami(server, cfg).await;
        let now = Instant::now();
        match answer {
            None => {
                if first.is_none() {
                    first = Some(now);
                    if attempts == 1 {
                        refusals.first_attempt += 1;
                    }
                }
                refusals.index_from_call.push((now - t0).as_secs_f64() * 1000.0);
                refusals.index_after_response.push((now - t1).as_secs_f64() * 1000.0);
                break;
            }
            Some((200, _)) => {}
            Some(_) => {
                if first.is_none() {
                    first = Some(now);
                    refusals.first_by_request += 1;
                    if attempts == 1 {
                        refusals.first_attempt += 1;
                    }
                }
            }
        }
        if attempts > 100_000 || now - t1 > Duration::from_secs(30) {
            bail!("the other instance still completed handshakes with a revoked certificate after {attempts} attempts");
        }
    }
    Ok(first.unwrap_or(t1))
}

/// One attempt on a new mTLS connection; `None` when the handshake is
/// refused. Any failure of the connection itself counts as that (with TLS
/// 1.3 the server's alert arrives after the client has finished, so it
/// surfaces on the first read or write).
async fn whoami(server: &Running, cfg: &Arc<rustls::ClientConfig>) -> Option<(u16, Bytes)> {
    match server.tls(cfg.clone()).await {
        Err(_) => None,
        Ok(tls) => match http1(tls).await {
            Err(_) => None,
            Ok(mut s) => send(&mut s, "GET", "/api/v1/whoami", "text/plain", Vec::new()).await.ok(),
        },
    }
}

/// Handshakes in memory (no sockets): the listener's rustls configuration
/// with the live check over an index of the whole set, and without it.
pub fn handshake_bench(env: &Env, n: usize) -> anyhow::Result<Value> {
    let index = Arc::new(CertIndex::default());
    let events: Vec<CertEvent> = env
        .set
        .iter()
        .enumerate()
        .map(|(i, (c, revoked))| CertEvent {
            id: i as i64 + 1,
            serial: c.serial.clone(),
            status: if *revoked { CertStatus::Revoked } else { CertStatus::Valid },
            reason: revoked.then_some(Reason::KeyCompromise),
            at: OffsetDateTime::now_utc(),
            not_after: OffsetDateTime::now_utc() + time::Duration::days(365),
            ca_generation: 1,
        })
        .collect();
    index.apply(&events);
    let loaded = DataDir::new(&env.data).load("http://127.0.0.1:8080")?;
    let identity =
        connect_pki_server::net::tls::TlsIdentity::ours(&loaded.issuing_der, &loaded.tls_der, loaded.tls_key);
    let lookup: Arc<connect_pki_server::net::tls::CertIndexRef> = {
        let index = index.clone();
        Arc::new(move |s: &[u8]| index.get(s).map(|e| e.status))
    };
    let cert = Arc::new(connect_pki_server::net::tls::ServerCert::new(&identity, true)?);
    let with = connect_pki_server::net::tls::server_config(
        std::slice::from_ref(&loaded.issuing_der),
        cert.clone(),
        Some(lookup),
        false,
    )?;
    let without =
        connect_pki_server::net::tls::server_config(std::slice::from_ref(&loaded.issuing_der), cert, None, false)?;
    let valid = env.set.iter().find(|(_, r)| !r).map(|(c, _)| c).context("a valid certificate")?;
    let client = env.client_config(valid)?;
    let mut t_with = Duration::ZERO;
    let mut t_without = Duration::ZERO;
    // Interleaved, so both see the same machine state.
    for _ in 0..n {
        t_with += handshake(&with, &client)?;
        t_without += handshake(&without, &client)?;
    }
    let per_s = |t: Duration| n as f64 / t.as_secs_f64();
    let (a, b) = (per_s(t_with), per_s(t_without));
    let r = json!({"handshakes": n, "with_live_check_per_s": a, "without_per_s": b, "overhead_percent": (b - a) / b * 100.0});
    eprintln!("   {r}");
    Ok(r)
}

fn handshake(server: &Arc<rustls::ServerConfig>, client: &Arc<rustls::ClientConfig>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut s = rustls::ServerConnection::new(server.clone())?;
    let mut c = rustls::ClientConnection::new(client.clone(), ServerName::try_from("127.0.0.1")?.to_owned())?;
    let mut buf = Vec::new();
    for _ in 0..10 {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf)?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd)?;
        }
        s.process_new_packets()?;
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf)?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd)?;
        }
        c.process_new_packets()?;
        if !s.is_handshaking() && !c.is_handshaking() {
            return Ok(t.elapsed());
        }
    }
    bail!("handshake did not complete")
}
