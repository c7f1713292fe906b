//! Revocation first under load (issue 23): revoke calls while the responder
//! answers OCSP as fast as wrk can ask, on the same cores. Three phases with
//! the same wrk settings and the same pace of revocations: OCSP alone,
//! revocations alone, both at once. The figures are both sides: the revoke
//! call's latency, idle and under load, and the OCSP throughput, alone and
//! while revocations go on.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::setup::{Cert, Env, Running, measure};

/// Seconds of each wrk run.
const SECONDS: u32 = 10;
/// The pause between two revocations: a steady trickle, not a second load.
const PACE: Duration = Duration::from_millis(10);

pub async fn revoke_under_ocsp_load(env: &Env, server: &Running, devices: &[Cert]) -> anyhow::Result<Value> {
    let requests = env.ocsp_requests()?;
    let req_file = env.path("priority-requests.hex");
    std::fs::write(&req_file, requests.iter().map(hex::encode).collect::<Vec<_>>().join("\n"))?;
    let script = env.path("priority-post.lua");
    std::fs::write(&script, crate::ocsp::LUA_POST)?;
    server.fetch_ocsp(&requests).await?;
    let url = format!("http://{}/ocsp", server.public);
    let load = {
        let (url, script, arg) = (url.clone(), script.clone(), req_file.display().to_string());
        move || crate::wrk(&url, &script, &[&arg], 2, 16, SECONDS)
    };
    let (idle_devices, loaded_devices) = devices.split_at(devices.len() / 2);

    let alone = load()?;
    eprintln!("   OCSP alone: {} req/s, p99 {} ms", alone["rps"], alone["p99_ms"]);
    let mut idle = revoke_paced(server, idle_devices, Duration::from_secs(u64::from(SECONDS) - 2)).await?;
    let wrk = std::thread::spawn(load.clone());
    // wrk connects and warms up first; the revocations end before it does.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut loaded = revoke_paced(server, loaded_devices, Duration::from_secs(u64::from(SECONDS) - 2)).await?;
    let under = wrk.join().map_err(|_| anyhow::anyhow!("wrk thread"))??;
    let pct = crate::percentile;
    let share = under["rps"].as_f64().unwrap_or(0.0) / alone["rps"].as_f64().unwrap_or(f64::NAN);
    let r = json!({
        "wrk": {"threads": 2, "connections": 16, "seconds": SECONDS},
        "pace_ms": PACE.as_millis() as u64,
        "ocsp_alone": alone,
        "ocsp_while_revoking": under,
        "ocsp_share_of_unloaded": share,
        "revokes_idle": idle.len(),
        "revoke_idle_p50_ms": pct(&mut idle, 0.5),
        "revoke_idle_p99_ms": pct(&mut idle, 0.99),
        "revokes_under_load": loaded.len(),
        "revoke_under_load_p50_ms": pct(&mut loaded, 0.5),
        "revoke_under_load_p99_ms": pct(&mut loaded, 0.99),
    });
    eprintln!(
        "   revoke idle p50 {:.1} / p99 {:.1} ms; under OCSP load p50 {:.1} / p99 {:.1} ms; OCSP {} req/s while revoking ({:.0} % of {} alone)",
        r["revoke_idle_p50_ms"].as_f64().unwrap_or(0.0),
        r["revoke_idle_p99_ms"].as_f64().unwrap_or(0.0),
        r["revoke_under_load_p50_ms"].as_f64().unwrap_or(0.0),
        r["revoke_under_load_p99_ms"].as_f64().unwrap_or(0.0),
        under["rps"],
        share * 100.0,
        alone["rps"],
    );
    Ok(r)
}

/// Revokes `devices` one after another, `PACE` apart, for at most `within`;
/// the milliseconds each call took, from sending to the whole answer.
async fn revoke_paced(server: &Running, devices: &[Cert], within: Duration) -> anyhow::Result<Vec<f64>> {
    let mut admin = server.admin().await?;
    let started = Instant::now();
    let mut took = Vec::new();
    for dev in devices {
        if started.elapsed() > within {
            break;
        }
        let t0 = Instant::now();
        measure::revoke(&mut admin, dev).await.context("a revoke call")?;
        took.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(PACE).await;
    }
    Ok(took)
}

/// The README row.
pub fn row(r: &Value) -> String {
    let x = &r["priority"];
    if x.is_null() {
        return String::new();
    }
    let f = |k: &str| x[k].as_f64().unwrap_or(0.0);
    format!(
        "| revoke call while the responder answers OCSP flat out (wrk 2 threads, 16 connections; a revoke every {} ms) | revoke p50 {:.1} ms, p99 {:.1} ms under load (idle: p50 {:.1}, p99 {:.1}); OCSP {:.0} req/s while revoking, {:.0} % of {:.0} alone | — | revoke p99 < 10 ms with OCSP ≥ 80 % of unloaded |\n",
        x["pace_ms"],
        f("revoke_under_load_p50_ms"),
        f("revoke_under_load_p99_ms"),
        f("revoke_idle_p50_ms"),
        f("revoke_idle_p99_ms"),
        x["ocsp_while_revoking"]["rps"].as_f64().unwrap_or(0.0),
        f("ocsp_share_of_unloaded") * 100.0,
        x["ocsp_alone"]["rps"].as_f64().unwrap_or(0.0),
    )
}
