//! Revocation under load: one instance to another (LISTEN/NOTIFY and polling
//! only), many revokers at once, and a facility closed with all its
//! certificates in one call.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use connect_pki_domain::{FacilityId, Serial};
use serde_json::{Value, json};

use crate::percentile;
use crate::setup::{self, Cert, Env, Running};

/// A database of its own on the PostgreSQL server of the tests, dropped by
/// [`PgDb::remove`].
pub struct PgDb {
    conn: sqlx::PgConnection,
    name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create(tag: &str) -> anyhow::Result<Self> {
        use sqlx::Connection;
        let admin_url =
            std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("cpki_bench_{tag}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin_url).await.context("PostgreSQL for the benchmark")?;
        sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut conn).await?;
        sqlx::query(&format!("create database {name}")).execute(&mut conn).await?;
        let url = format!("{}/{name}", admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base));
        Ok(Self { conn, name, url })
    }

    pub async fn remove(mut self) {
        let _ =
            sqlx::query(&format!("drop database if exists {} with (force)", self.name)).execute(&mut self.conn).await;
    }
}

/// Two instances on one PostgreSQL database: revoke through A, measure until
/// B refuses the handshake; first with both following the feed by
/// LISTEN/NOTIFY (the default), then with `--feed-listen false` (polling
/// every 100 ms only).
pub async fn cross_instance(n: usize) -> anyhow::Result<Value> {
    let db = PgDb::create("x").await?;
    let result = async {
        let env = Env::create_on(0, 3 * n, Some(db.url.clone())).await?;
        let (first, rest) = env.to_revoke.split_at(n);
        let (second, third) = rest.split_at(n);
        let mut out = serde_json::Map::new();
        for (mode, listen, devices) in [("listen_notify", "true", first), ("polling_only", "false", second)] {
            eprintln!("   {mode} (--feed-listen {listen})");
            let a = env.serve_with(&format!("ready-a-{mode}.json"), &["--feed-listen", listen])?;
            let b = env.serve_with(&format!("ready-b-{mode}.json"), &["--feed-listen", listen])?;
            out.insert(mode.into(), setup::refusal_across(&env, devices, &a, &b).await?);
        }
        eprintln!("   every_instance (three instances, --revoke-waits-for-every-instance true)");
        out.insert("every_instance".into(), every_instance(&env, third).await?);
        anyhow::Ok(Value::Object(out))
    }
    .await;
    db.remove().await;
    result
}

/// Three instances with `--revoke-waits-for-every-instance true`: each
/// revoke through A answers once B and C have recorded that they applied it.
/// The call's duration is the time from the call to "applied on all three".
async fn every_instance(env: &Env, devices: &[Cert]) -> anyhow::Result<Value> {
    let option = ["--revoke-waits-for-every-instance", "true"];
    let a = env.serve_with("ready-every-a.json", &option)?;
    let _b = env.serve_with("ready-every-b.json", &option)?;
    let _c = env.serve_with("ready-every-c.json", &option)?;
    // Every instance's first heartbeat is in.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut admin = a.admin().await?;
    let (mut took, mut all_applied) = (Vec::with_capacity(devices.len()), 0usize);
    for dev in devices {
        let t0 = Instant::now();
        let path = format!("/api/v1/certificates/{}/revoke", dev.serial);
        let (status, body) =
            setup::send(&mut admin, "POST", &path, "application/json", br#"{"reason":"keyCompromise"}"#.to_vec())
                .await?;
        took.push(t0.elapsed().as_secs_f64() * 1000.0);
        if status != 200 {
            bail!("revoke answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let body: Value = serde_json::from_slice(&body)?;
        if body["instances"]["all_applied"] == true {
            all_applied += 1;
        }
    }
    let r = json!({
        "instances": 3,
        "revocations": devices.len(),
        "answered_all_applied": all_applied,
        "call_p50_ms": percentile(&mut took, 0.5),
        "call_p99_ms": percentile(&mut took, 0.99),
    });
    eprintln!("   {r}");
    Ok(r)
}

/// On one backend (`None`: SQLite): a facility of `users` × `per_user`
/// valid certificates closed in one call, then `revokers` concurrent
/// revokers of `per_revoker` certificates each (against the CRL the close
/// left behind).
pub async fn bulk(
    postgres: bool,
    users: usize,
    per_user: usize,
    revokers: usize,
    per_revoker: usize,
) -> anyhow::Result<Value> {
    let db = if postgres { Some(PgDb::create("bulk").await?) } else { None };
    let result = async {
        let env = Env::create_on(0, revokers * per_revoker, db.as_ref().map(|d| d.url.clone())).await?;
        let (facility, serials) = env.add_facility(users, per_user).await?;
        let server = env.serve()?;
        let close = facility_close(&server, facility, &serials).await?;
        let concurrent = concurrent_revokes(&server, &env.to_revoke, revokers).await?;
        anyhow::Ok(json!({"facility_close": close, "concurrent_revokes": concurrent}))
    }
    .await;
    if let Some(db) = db {
        db.remove().await;
    }
    result
}

/// `POST /api/v1/facilities/{id}/close`, timed from sending it until the
/// whole response is read; then the served CRL must list every certificate.
async fn facility_close(server: &Running, facility: FacilityId, serials: &[Serial]) -> anyhow::Result<Value> {
    let mut admin = server.admin().await?;
    let before = server.crl().await?;
    let t0 = Instant::now();
    let (status, body) = setup::send(
        &mut admin,
        "POST",
        &format!("/api/v1/facilities/{}/close", facility.0),
        "application/json",
        Vec::new(),
    )
    .await?;
    let took = t0.elapsed().as_secs_f64() * 1000.0;
    if status != 200 {
        bail!("close answered {status}: {}", String::from_utf8_lossy(&body));
    }
    let answer: Value = serde_json::from_slice(&body)?;
    let revoked = answer["revoked_serials"].as_array().map_or(0, Vec::len);
    let crl = server.crl().await?;
    let missing = serials.iter().filter(|s| !crl.lists(s)).count();
    if revoked != serials.len() || missing > 0 {
        bail!("close revoked {revoked} of {}; {missing} missing from the CRL served after it", serials.len());
    }
    let r = json!({
        "certificates": serials.len(),
        "close_call_ms": took,
        "revoked": revoked,
        "crl_entries_before": before.serials.len(),
        "crl_entries_after": crl.serials.len(),
        "crl_number_before": before.number,
        "crl_number_after": crl.number,
    });
    eprintln!("   facility close: {r}");
    Ok(r)
}

/// `workers` revokers, each on its own mTLS connection, revoking their
/// share of `devices` one call after another, all starting together.
async fn concurrent_revokes(server: &Running, devices: &[Cert], workers: usize) -> anyhow::Result<Value> {
    let before = server.crl().await?;
    let barrier = Arc::new(tokio::sync::Barrier::new(workers + 1));
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let mut sender = server.admin().await?;
        let serials: Vec<Serial> = devices.iter().skip(w).step_by(workers).map(|c| c.serial.clone()).collect();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut latencies = Vec::with_capacity(serials.len());
            for s in serials {
                let t = Instant::now();
                let (status, body) = setup::send(
                    &mut sender,
                    "POST",
                    &format!("/api/v1/certificates/{s}/revoke"),
                    "application/json",
                    br#"{"reason":"keyCompromise"}"#.to_vec(),
                )
                .await?;
                if status != 200 {
                    bail!("revoke answered {status}: {}", String::from_utf8_lossy(&body));
                }
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    barrier.wait().await;
    let t0 = Instant::now();
    let mut latencies = Vec::with_capacity(devices.len());
    for t in tasks {
        latencies.extend(t.await??);
    }
    let wall = t0.elapsed().as_secs_f64();
    let after = server.crl().await?;
    let missing = devices.iter().filter(|c| !after.lists(&c.serial)).count();
    if missing > 0 {
        bail!("{missing} revoked certificates are missing from the CRL");
    }
    let r = json!({
        "revokers": workers,
        "revocations": latencies.len(),
        "seconds": wall,
        "revocations_per_s": latencies.len() as f64 / wall,
        "p50_ms": percentile(&mut latencies, 0.5),
        "p99_ms": percentile(&mut latencies, 0.99),
        "max_ms": percentile(&mut latencies, 1.0),
        "crl_builds": after.number.saturating_sub(before.number),
        "crl_entries_before": before.serials.len(),
        "crl_entries_after": after.serials.len(),
    });
    eprintln!("   {workers} concurrent revokers: {r}");
    Ok(r)
}
