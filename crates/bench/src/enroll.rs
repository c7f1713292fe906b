//! Enrollment with a CSR, by the JSON API, by EST and by SCEP (issue 26)
//! side by side in one run: the same server, the same client (wrk, 2
//! threads, 16 connections over TLS), a fresh one-time code per request
//! (the same CSR for the first two; SCEP's carries its code, so one each).

use serde_json::{Value, json};

use crate::setup::{Env, Running};
use crate::{number, wrk};

/// Each thread takes every other line, so no code is sent twice; a line is
/// a whole request made by `make(line)`.
const LUA: &str = r#"
local requests = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do
    requests[#requests + 1] = make(line)
  end
  i = thread_id or 0
end
setup = function(thread)
  thread:set("thread_id", (counter or 0))
  counter = (counter or 0) + 1
end
request = function()
  i = i + 2
  if i > #requests then i = (i % 2) + 1 end
  return requests[i]
end
"#;

/// A JSON body per line.
const MAKE_JSON: &str = r#"
make = function(line)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, line)
end
"#;

/// "Basic …<TAB>base64 CSR" per line.
const MAKE_EST: &str = r#"
make = function(line)
  local auth, body = line:match("([^\t]+)\t(.+)")
  return wrk.format("POST", nil, {["Content-Type"] = "application/pkcs10", ["Authorization"] = auth}, body)
end
"#;

/// A pkiMessage in hex per line, decoded once at the start.
const MAKE_SCEP: &str = r#"
make = function(line)
  local der = line:gsub("..", function(h) return string.char(tonumber(h, 16)) end)
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-pki-message"}, der)
end
"#;

fn run(env: &Env, name: &str, url: &str, lines: &[String], make: &str, seconds: u32) -> anyhow::Result<Value> {
    let file = env.path(&format!("{name}.lines"));
    std::fs::write(&file, lines.join("\n"))?;
    let script = env.path(&format!("{name}.lua"));
    std::fs::write(&script, format!("{make}{LUA}"))?;
    let r = wrk(url, &script, &[&file.display().to_string()], 2, 16, seconds)?;
    let ok = r["requests"].as_f64().unwrap_or(0.0) - r["non_2xx"].as_f64().unwrap_or(0.0);
    let per_s = ok / f64::from(seconds);
    eprintln!(
        "   {name}: {per_s:.0} enrollments/s (p50 {} ms, p99 {} ms, {} refused)",
        r["p50_ms"], r["p99_ms"], r["non_2xx"]
    );
    Ok(json!({"enrollments_per_s": per_s, "wrk": r}))
}

/// The section: enrollment by both routes on the shared server, which it
/// then stops; renewal on a server of its own, with the per-device renewal
/// limit lifted.
pub async fn section(env: &Env, server: Running, seconds: u32) -> anyhow::Result<Value> {
    eprintln!("== enrollment with a CSR: the JSON API and EST side by side");
    let mut out = enrollments(env, &server, seconds).await?;
    drop(server);
    eprintln!("== renewal by EST");
    out["est_renew"] = renewals(env, 16, seconds).await?;
    Ok(out)
}

async fn enrollments(env: &Env, server: &Running, seconds: u32) -> anyhow::Result<Value> {
    let n = 6_000;
    let bodies = env.enroll_bodies(n).await?;
    let json_api =
        run(env, "enroll-json", &format!("https://{}/api/v1/enroll", server.api), &bodies, MAKE_JSON, seconds)?;
    let est_lines = env.est_requests(n).await?;
    let url = format!("https://{}/.well-known/est/simpleenroll", server.api);
    let est = run(env, "enroll-est", &url, &est_lines, MAKE_EST, seconds)?;
    let scep = scep(env, server, n, seconds).await?;
    Ok(json!({"enrollments_per_s": json_api["enrollments_per_s"], "wrk": json_api["wrk"], "est": est, "scep": scep}))
}

/// SCEP PKCSReq on the same server and client (over TLS, as the others):
/// every answer is a 200, a refusal too, so the certificates issued are
/// counted in the database.
async fn scep(env: &Env, server: &Running, n: usize, seconds: u32) -> anyhow::Result<Value> {
    let lines = env.scep_requests(n).await?;
    let before = env.certificate_count().await?;
    let url = format!("https://{}/scep?operation=PKIOperation", server.api);
    let mut r = run(env, "enroll-scep", &url, &lines, MAKE_SCEP, seconds)?;
    let issued = env.certificate_count().await? - before;
    let per_s = issued as f64 / f64::from(seconds);
    let answered = r["wrk"]["requests"].as_f64().unwrap_or(0.0);
    eprintln!("   enroll-scep: {per_s:.0} certificates issued/s ({issued} of {answered} answers)");
    r["enrollments_per_s"] = json!(per_s);
    r["issued"] = json!(issued);
    Ok(r)
}

/// The table's rows.
pub fn rows(r: &Value) -> String {
    let e = &r["enroll"];
    if !e.is_object() {
        return String::new();
    }
    let mut s = format!(
        "| enrollment with a CSR, JSON API (SQLite, 16 connections) | {:.0} certificates/s, p99 {} ms | — | ≥ 500/s |\n",
        number(&e["enrollments_per_s"]),
        e["wrk"]["p99_ms"]
    );
    if e["est"].is_object() {
        s.push_str(&format!(
            "| enrollment with a CSR, EST `simpleenroll` (same run, same client) | {:.0} certificates/s, p99 {} ms | JSON API above | — |\n",
            number(&e["est"]["enrollments_per_s"]),
            e["est"]["wrk"]["p99_ms"]
        ));
    }
    if e["scep"].is_object() {
        s.push_str(&format!(
            "| enrollment by SCEP PKCSReq, RSA-2048 requester, AES-256 envelope (same run, same client) | {:.0} certificates/s, p99 {} ms | JSON API above | — |\n",
            number(&e["scep"]["enrollments_per_s"]),
            e["scep"]["wrk"]["p99_ms"]
        ));
    }
    if e["est_renew"].is_object() {
        s.push_str(&format!(
            "| renewal by EST `simplereenroll`, a new TLS connection each ({} devices) | {:.0} renewals/s, p99 {:.1} ms | — | — |\n",
            e["est_renew"]["devices"],
            number(&e["est_renew"]["renewals_per_s"]),
            number(&e["est_renew"]["p99_ms"])
        ));
    }
    s
}

/// EST renewals per second: `devices` devices of one user, each renewing
/// in a loop over a new TLS connection with the certificate it got last (the
/// key stays, as an agent renewing at half-life does), on a server whose
/// per-device renewal limit is lifted.
pub async fn renewals(env: &Env, devices: usize, seconds: u32) -> anyhow::Result<Value> {
    use std::time::{Duration, Instant};
    // The devices first: the server reads them at its start (made behind a
    // running server's back, they would be unknown to it until its next
    // reconciliation, and refused in the handshake).
    let certs = env.bench_devices(devices).await?;
    let server = env.serve_with("ready-renew.json", &["--renewals-per-hour", "1000"])?;
    let csr = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, env.bench_csr()?).into_bytes();
    let end = Instant::now() + Duration::from_secs(u64::from(seconds));
    let mut tasks = tokio::task::JoinSet::new();
    for c in certs {
        let (cfg_of, api, csr) = (env.device_client_factory(), server.api.clone(), csr.clone());
        tasks.spawn(async move {
            let mut der = c.der;
            let (mut took, mut refused, mut why) = (Vec::new(), 0u64, None);
            while Instant::now() < end {
                let started = Instant::now();
                let answer = async {
                    let cfg = cfg_of(&der)?;
                    let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
                    let tls =
                        tokio_rustls::TlsConnector::from(cfg).connect(name, crate::setup::tcp(&api).await?).await?;
                    let mut s = crate::setup::http1(tls).await?;
                    crate::setup::send(
                        &mut s,
                        "POST",
                        "/.well-known/est/simplereenroll",
                        "application/pkcs10",
                        csr.clone(),
                    )
                    .await
                }
                .await;
                match answer {
                    Ok((200, body)) => {
                        let text: String = String::from_utf8_lossy(&body).split_whitespace().collect();
                        let p7 = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text)?;
                        der = connect_pki_ca::est::certificates_of(&p7)?.into_iter().next().unwrap_or_default();
                        took.push(started.elapsed());
                    }
                    other => {
                        refused += 1;
                        why.get_or_insert_with(|| match other {
                            Ok((status, body)) => format!("{status} {}", String::from_utf8_lossy(&body)),
                            Err(e) => format!("{e:#}"),
                        });
                    }
                }
            }
            anyhow::Ok((took, refused, why))
        });
    }
    let (mut took, mut refused, mut why) = (Vec::new(), 0u64, None);
    while let Some(done) = tasks.join_next().await {
        let (t, r, w) = done??;
        took.extend(t);
        refused += r;
        why = why.or(w);
    }
    took.sort_unstable();
    let pct = |p: f64| {
        took.get(((took.len() as f64 * p) as usize).min(took.len().saturating_sub(1))).map(|d| d.as_secs_f64() * 1e3)
    };
    let per_s = took.len() as f64 / f64::from(seconds);
    eprintln!(
        "   EST renewals: {per_s:.0}/s over {devices} devices (p50 {:?} ms, p99 {:?} ms, {refused} refused: {why:?})",
        pct(0.5),
        pct(0.99)
    );
    drop(server);
    Ok(
        json!({"renewals_per_s": per_s, "devices": devices, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "refused": refused, "first_refusal": why}),
    )
}
