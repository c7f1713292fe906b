//! OCSP throughput: connect-pki next to `openssl ocsp` and `cfssl ocspserve`,
//! every target driven with the same wrk settings (threads, connections,
//! duration, the same request bodies), each reference in its best honest
//! configuration:
//!
//! * every reference process is started right before its own run and stopped
//!   (with all its workers) right after it, so nothing of one run is still
//!   running during the next: openssl's `-multi` workers spin on the
//!   connections wrk abandons at the end of a run, and used to take half the
//!   CPU away from the cfssl run that followed;
//! * cfssl is given responses fetched just before it starts, so that none
//!   expires during its run (our responses are valid for 60 s), and it runs
//!   twice: with our responses byte for byte (signed by the delegated OCSP
//!   signer, whose certificate they carry), and with responses signed by the
//!   issuing CA itself, which need no certificate. cfssl parses every
//!   response before sending it, and Go's parser verifies the signature of an
//!   embedded certificate each time: the CA-signed responses spare it that;
//! * before a reference is measured, its answers are checked (successful,
//!   the right status, valid beyond the end of the run).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use connect_pki_ca::ocsp::{OcspSigner, Status};
use connect_pki_domain::Reason;
use der::{Decode, Encode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, SingleResponse};

use crate::setup::{self, Env, Running};
use crate::{Proc, free_port, wrk};

pub const OURS: &str = "connect-pki";
pub const OPENSSL: &str = "openssl ocsp -multi 2";
/// cfssl with our responses, byte for byte (delegated signer's certificate embedded).
pub const CFSSL: &str = "cfssl ocspserve";
/// cfssl with responses signed by the issuing CA (no certificate embedded).
pub const CFSSL_CA: &str = "cfssl ocspserve, CA-signed responses";

pub async fn ocsp_bench(env: &Env, server: &Running, seconds: u32, thread_counts: &[u32]) -> anyhow::Result<Value> {
    let requests = env.ocsp_requests()?;
    let revoked: Vec<bool> = env.set.iter().map(|(_, r)| *r).collect();
    let req_file = env.path("ocsp-requests.hex");
    std::fs::write(&req_file, requests.iter().map(hex::encode).collect::<Vec<_>>().join("\n"))?;
    let script = env.path("post.lua");
    std::fs::write(&script, LUA_POST)?;
    let req_arg = req_file.display().to_string();
    // Fetching every response once warms our cache the way a day of traffic
    // would; our answers are checked like the references'.
    server.fetch_ocsp(&requests).await?;
    let valid_for = Duration::from_secs(u64::from(seconds) + 5);
    check(&server.public, "/ocsp", &requests, &revoked, 1, false, valid_for).await?;

    let mut rows = Vec::new();
    let mut sizes = serde_json::Map::new();
    let measure = |name: &str, url: &str, threads: u32, connections: u32| -> anyhow::Result<Value> {
        let r = wrk(url, &script, &[&req_arg], threads, connections, seconds)?;
        eprintln!(
            "   {name:38} t={threads} c={connections:2}: {} req/s, p50 {} ms, p99 {} ms {}",
            r["rps"], r["p50_ms"], r["p99_ms"], r["socket_errors"]
        );
        Ok(json!({"target": name, "threads": threads, "connections": connections, "result": r}))
    };
    for &threads in thread_counts {
        for connections in [16, 64] {
            rows.push(measure(OURS, &format!("http://{}/ocsp", server.public), threads, connections)?);

            let (openssl, port) = start_openssl(env)?;
            let addr = format!("127.0.0.1:{port}");
            // A bare connect-and-close probe wedges openssl's responder, so
            // readiness is checked with a real request.
            setup::wait_ocsp(&addr, &requests[0]).await?;
            check(&addr, "/", &requests, &revoked, 10, true, valid_for).await?;
            rows.push(measure(OPENSSL, &format!("http://{addr}/"), threads, connections)?);
            drop(openssl);

            for (name, ca_signed) in [(CFSSL, false), (CFSSL_CA, true)] {
                let mut responses = server.fetch_ocsp(&requests).await?;
                if ca_signed {
                    responses = sign_by_ca(env, &requests, &responses)?;
                }
                sizes.insert(name.into(), json!(responses.first().map_or(0, Vec::len)));
                let file = env.path("cfssl-responses.txt");
                write_responses(&file, &responses)?;
                let (cfssl, port) = start_cfssl(&file)?;
                let addr = format!("127.0.0.1:{port}");
                setup::wait_ocsp(&addr, &requests[0]).await?;
                check(&addr, "/", &requests, &revoked, 1, false, valid_for).await?;
                rows.push(measure(name, &format!("http://{addr}/"), threads, connections)?);
                drop(cfssl);
            }
        }
    }
    let summary = summarise(&rows);
    eprintln!("   {summary}");
    Ok(json!({
        "certificates": requests.len(),
        "revoked_share": 0.1,
        "seconds": seconds,
        "response_bytes": sizes,
        "runs": rows,
        "summary": summary,
    }))
}

/// OCSP throughput with the relying-party record on (the default) and off
/// (`--relying-party-recording false`), in one run: the same wrk settings,
/// the same requests, the two alternating so that neither gets the
/// machine's better minutes; each instance runs alone.
pub async fn recording_bench(env: &Env, seconds: u32, rounds: u32) -> anyhow::Result<Value> {
    let requests = env.ocsp_requests()?;
    let req_file = env.path("ocsp-requests.hex");
    std::fs::write(&req_file, requests.iter().map(hex::encode).collect::<Vec<_>>().join("\n"))?;
    let script = env.path("post.lua");
    std::fs::write(&script, LUA_POST)?;
    let req_arg = req_file.display().to_string();
    let (threads, connections) = (2, 64);
    let mut runs: Vec<Value> = Vec::new();
    for round in 0..rounds {
        for (label, extra) in [("on", &[][..]), ("off", &["--relying-party-recording", "false"][..])] {
            let server = env.serve_with(&format!("ready-{label}-{round}.json"), extra)?;
            server.fetch_ocsp(&requests).await?;
            let r =
                wrk(&format!("http://{}/ocsp", server.public), &script, &[&req_arg], threads, connections, seconds)?;
            eprintln!("   recording {label:3} round {round}: {} req/s, p99 {} ms", r["rps"], r["p99_ms"]);
            runs.push(json!({"recording": label, "round": round, "result": r}));
            drop(server);
        }
    }
    let median = |label: &str| {
        let mut v: Vec<f64> =
            runs.iter().filter(|r| r["recording"] == label).filter_map(|r| r["result"]["rps"].as_f64()).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (on, off) = (median("on"), median("off"));
    let ratio = if off > 0.0 { on / off } else { 0.0 };
    eprintln!("   recording on/off: {on:.0} / {off:.0} req/s = {ratio:.3}");
    Ok(json!({
        "certificates": requests.len(),
        "threads": threads,
        "connections": connections,
        "seconds": seconds,
        "runs": runs,
        "median_rps_on": on,
        "median_rps_off": off,
        "on_over_off": ratio,
    }))
}

/// Per (threads, connections): our rate over each reference's; and the
/// least favourable of those ratios, per reference, over all driver settings.
fn summarise(rows: &[Value]) -> Value {
    let rps = |name: &str, t: &Value, c: &Value| {
        rows.iter()
            .find(|r| r["target"] == name && &r["threads"] == t && &r["connections"] == c)
            .and_then(|r| r["result"]["rps"].as_f64())
            .unwrap_or(0.0)
    };
    let mut cells = Vec::new();
    for r in rows.iter().filter(|r| r["target"] == OURS) {
        let (t, c) = (&r["threads"], &r["connections"]);
        let ours = rps(OURS, t, c);
        let best_cfssl = rps(CFSSL, t, c).max(rps(CFSSL_CA, t, c));
        cells.push(json!({
            "threads": t, "connections": c,
            "vs_openssl": ours / rps(OPENSSL, t, c).max(1.0),
            "vs_cfssl_our_responses": ours / rps(CFSSL, t, c).max(1.0),
            "vs_cfssl_ca_signed": ours / rps(CFSSL_CA, t, c).max(1.0),
            "vs_best_cfssl": ours / best_cfssl.max(1.0),
        }));
    }
    let least = |key: &str| {
        cells
            .iter()
            .min_by(|a, b| a[key].as_f64().unwrap_or(0.0).total_cmp(&b[key].as_f64().unwrap_or(0.0)))
            .map(|c| json!({"ratio": c[key], "threads": c["threads"], "connections": c["connections"]}))
            .unwrap_or_default()
    };
    json!({"cells": cells, "least_favourable_vs_openssl": least("vs_openssl"), "least_favourable_vs_cfssl": least("vs_best_cfssl")})
}

fn start_openssl(env: &Env) -> anyhow::Result<(Proc, u16)> {
    let port = free_port();
    let proc = Proc::spawn_group(
        Command::new("openssl")
            .args(["ocsp", "-index"])
            .arg(env.openssl_index())
            .args(["-port", &port.to_string(), "-rsigner"])
            .arg(env.path("ca/ocsp.pem"))
            .arg("-rkey")
            .arg(env.plain_key("ocsp")?)
            .arg("-CA")
            .arg(env.path("ca/issuing.pem"))
            .args(["-nmin", "1", "-multi", "2", "-ignore_err"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    Ok((proc, port))
}

/// cfssl with Go's defaults (GOMAXPROCS = the 2 cores; 1 halves its rate,
/// 4 is no faster) and its default log level (nothing is logged per request).
fn start_cfssl(responses: &Path) -> anyhow::Result<(Proc, u16)> {
    let port = free_port();
    let proc = Proc::spawn_group(
        Command::new("cfssl")
            .args(["ocspserve", "-address", "127.0.0.1", "-port", &port.to_string(), "-responses"])
            .arg(responses)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    Ok((proc, port))
}

fn write_responses(file: &Path, responses: &[Vec<u8>]) -> anyhow::Result<()> {
    let b64 = |r: &Vec<u8>| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, r);
    std::fs::write(file, responses.iter().map(b64).collect::<Vec<_>>().join("\n") + "\n")?;
    Ok(())
}

fn at(t: &OcspGeneralizedTime) -> anyhow::Result<OffsetDateTime> {
    let secs = i64::try_from(t.0.to_unix_duration().as_secs())?;
    Ok(OffsetDateTime::from_unix_timestamp(secs)?)
}

fn single(response: &[u8]) -> anyhow::Result<SingleResponse> {
    let r = OcspResponse::from_der(response).map_err(|e| anyhow!("OCSP response: {e}"))?;
    let bytes = r.response_bytes.as_ref().with_context(|| format!("OCSP response status {:?}", r.response_status))?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(|e| anyhow!("basic response: {e}"))?;
    basic.tbs_response_data.responses.first().cloned().context("no SingleResponse")
}

/// The same answers signed by the issuing CA itself, without a certificate
/// (a relying party checks them with the issuer's key): what an operator
/// would hand cfssl after signing its responses offline with the CA.
fn sign_by_ca(env: &Env, requests: &[Vec<u8>], ours: &[Vec<u8>]) -> anyhow::Result<Vec<Vec<u8>>> {
    let signer = OcspSigner::new(env.issuing_der(), env.issuing_key()?.into(), env.issuing_der())?;
    requests
        .iter()
        .zip(ours)
        .map(|(req, resp)| {
            let req = OcspRequest::from_der(req).map_err(|e| anyhow!("OCSP request: {e}"))?;
            let id = req.tbs_request.request_list.first().context("empty request")?.req_cert.clone();
            let s = single(resp)?;
            let status = match &s.cert_status {
                CertStatus::Good(_) => Status::Good,
                CertStatus::Unknown(_) => Status::Unknown,
                CertStatus::Revoked(info) => Status::Revoked {
                    at: at(&info.revocation_time)?,
                    reason: match info.revocation_reason {
                        Some(CrlReason::KeyCompromise) => Reason::KeyCompromise,
                        Some(CrlReason::CessationOfOperation) => Reason::CessationOfOperation,
                        Some(CrlReason::Superseded) => Reason::Superseded,
                        _ => Reason::Unspecified,
                    },
                },
            };
            let next = s.next_update.as_ref().context("no nextUpdate")?;
            let der = signer.respond(&[(id, status)], None, at(&s.this_update)?, at(next)?)?;
            // The certificate is outside the signed part: dropping it leaves
            // a response the issuer's key verifies.
            let r = OcspResponse::from_der(&der).map_err(|e| anyhow!("{e}"))?;
            let bytes = r.response_bytes.context("unsigned response")?;
            let mut basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(|e| anyhow!("{e}"))?;
            basic.certs = None;
            OcspResponse::successful(basic).and_then(|r| r.to_der()).map_err(|e| anyhow!("{e}"))
        })
        .collect()
}

/// Asks `addr` about every `step`-th request and checks each answer: a
/// successful response, the certificate's real status, and valid for at
/// least `valid_for` more. `fresh` opens a connection per request.
async fn check(
    addr: &str,
    path: &str,
    requests: &[Vec<u8>],
    revoked: &[bool],
    step: usize,
    fresh: bool,
    valid_for: Duration,
) -> anyhow::Result<()> {
    let connect = || async { setup::http1(setup::tcp(addr).await?).await };
    let mut sender = connect().await?;
    let deadline = OffsetDateTime::now_utc() + valid_for;
    for (checked, i) in (0..requests.len()).step_by(step).enumerate() {
        if fresh && checked > 0 {
            sender = connect().await?;
        }
        let (status, body) =
            setup::send(&mut sender, "POST", path, "application/ocsp-request", requests[i].clone()).await?;
        if status != 200 {
            bail!("{addr}: request {i} answered HTTP {status}");
        }
        let s = single(&body).with_context(|| format!("{addr}: answer to request {i}"))?;
        let is_revoked = matches!(s.cert_status, CertStatus::Revoked(_));
        if is_revoked != revoked[i] || matches!(s.cert_status, CertStatus::Unknown(_)) {
            bail!("{addr}: request {i} answered {:?}", s.cert_status);
        }
        match &s.next_update {
            Some(n) if at(n)? >= deadline => {}
            _ => bail!("{addr}: the answer to request {i} expires before the end of the run"),
        }
    }
    Ok(())
}

pub(crate) const LUA_POST: &str = r#"
local bodies = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do
    local der = line:gsub("..", function(h) return string.char(tonumber(h, 16)) end)
    bodies[#bodies + 1] = wrk.format("POST", nil, {["Content-Type"] = "application/ocsp-request"}, der)
  end
  i = math.random(#bodies)
end
request = function()
  i = i % #bodies + 1
  return bodies[i]
end
"#;
