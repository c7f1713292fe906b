//! Benchmarks of connect-pki, side by side with the reference tools in one
//! run (DESIGN §7). Not tests: figures, printed as a Markdown table and saved
//! as JSON.
//!
//! usage: cargo run --release -p connect-pki-bench [-- --quick]
//!
//! Needs: wrk, openssl, cfssl (Debian golang-cfssl). Every server is started
//! on 127.0.0.1 and stopped at the end.

mod setup;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use setup::Env;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // The memory figure is taken in a process of its own, so that nothing the
    // other benchmarks allocated and freed hides or inflates it.
    if args.get(1).map(String::as_str) == Some("__memory") {
        let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        println!("{}", memory_bench(n));
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(quick))
}

async fn run(quick: bool) -> anyhow::Result<()> {
    for tool in ["wrk", "openssl", "cfssl"] {
        if Command::new("which").arg(tool).output().map(|o| !o.status.success()).unwrap_or(true) {
            bail!("{tool} is needed (apt-get install wrk openssl golang-cfssl)");
        }
    }
    let mut results = serde_json::Map::new();
    let (n_certs, n_refusal) = if quick { (2_000, 100) } else { (10_000, 1_000) };
    eprintln!("== setting up {n_certs} certificates (10 % revoked) and {n_refusal} devices to revoke");
    let env = Env::create(n_certs, n_refusal).await?;

    eprintln!("== CRL rebuild");
    results.insert("crl".into(), crl_bench(&env, quick)?);
    eprintln!("== memory of the revocation index");
    let n = if quick { 200_000 } else { 1_000_000 };
    let out = Command::new(std::env::current_exe()?).args(["__memory", &n.to_string()]).output()?;
    results.insert("memory".into(), serde_json::from_slice(&out.stdout).context("memory benchmark output")?);
    eprintln!("== TLS handshakes with and without the live check");
    results.insert("handshake".into(), setup::handshake_bench(&env, if quick { 500 } else { 3_000 })?);

    let server = env.serve()?;
    eprintln!("== OCSP throughput: connect-pki, openssl ocsp, cfssl ocspserve");
    results.insert("ocsp".into(), ocsp_bench(&env, &server, if quick { 3 } else { 10 }).await?);
    eprintln!("== revocation to refusal");
    results.insert("refusal".into(), setup::refusal_bench(&env, &server).await?);
    eprintln!("== enrollment with a CSR");
    results.insert("enroll".into(), enroll_bench(&env, &server, if quick { 2 } else { 5 }).await?);
    drop(server);
    if std::env::var("BENCH_KEEP").is_ok() {
        eprintln!("(kept {})", env.keep().display());
    }
    eprintln!("== revocation on one instance → refusal on another (PostgreSQL)");
    results.insert("cross_instance".into(), cross_instance(if quick { 50 } else { 300 }).await?);

    let out = Value::Object(results);
    let file = setup::workspace().join("target/bench-results.json");
    std::fs::write(&file, serde_json::to_string_pretty(&out)?)?;
    println!("{}", markdown(&out));
    eprintln!("(saved to {})", file.display());
    Ok(())
}

/// A child process stopped when dropped: SIGTERM first, which openssl's
/// `-multi` parent passes on to its workers (SIGKILL would orphan them), then
/// SIGKILL for whatever is left.
pub struct Proc(pub Child, Option<String>);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> anyhow::Result<Self> {
        Ok(Self(cmd.spawn()?, None))
    }

    /// Also kills, when dropped, every process whose command line contains
    /// `pattern` (openssl's `-multi` workers survive their parent).
    fn with_stragglers(mut self, pattern: String) -> Self {
        self.1 = Some(pattern);
        self
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(p) = &self.1 {
            let _ = Command::new("pkill").args(["-KILL", "-f", "--", p]).status();
        }
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn crl_bench(env: &Env, quick: bool) -> anyhow::Result<Value> {
    let sizes: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000] };
    let mut rows = Vec::new();
    for &n in sizes {
        let (ours_ms, ours_bytes) = env.crl_rebuild(n)?;
        let (openssl_ms, openssl_bytes) = env.openssl_gencrl(n)?;
        eprintln!(
            "   {n} entries: connect-pki {ours_ms:.1} ms ({ours_bytes} B), openssl ca -gencrl {openssl_ms:.1} ms ({openssl_bytes} B)"
        );
        rows.push(json!({"entries": n, "connect_pki_ms": ours_ms, "connect_pki_bytes": ours_bytes,
                          "openssl_ms": openssl_ms, "openssl_bytes": openssl_bytes}));
    }
    Ok(Value::Array(rows))
}

fn memory_bench(n: usize) -> Value {
    let before = setup::rss_bytes();
    let index = setup::big_index(n);
    let after = setup::rss_bytes();
    let mib = (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0);
    eprintln!("   {n} serials: {mib:.1} MiB resident ({} entries)", index.len());
    drop(index);
    json!({"serials": n, "resident_mib": mib})
}

/// Parsed `wrk --latency` output.
fn parse_wrk(out: &str) -> Value {
    let num = |prefix: &str| -> Option<f64> {
        out.lines().find(|l| l.trim_start().starts_with(prefix)).and_then(|l| l.split_whitespace().nth(1)).and_then(
            |v| {
                let (n, unit) = v.trim_end_matches(|c: char| c.is_alphabetic()).parse::<f64>().ok().map(|n| (n, v))?;
                Some(if unit.ends_with("us") {
                    n / 1000.0
                } else if unit.ends_with("ms") {
                    n
                } else if unit.ends_with('s') {
                    n * 1000.0
                } else {
                    n
                })
            },
        )
    };
    let rps = out
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok());
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    let non2xx = out
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let errors = out.lines().find(|l| l.contains("Socket errors")).map(str::trim).unwrap_or("").to_string();
    json!({"rps": rps, "p50_ms": num("50%"), "p99_ms": num("99%"), "requests": requests, "non_2xx": non2xx, "socket_errors": errors})
}

fn wrk(url: &str, script: &Path, args: &[&str], connections: u32, seconds: u32) -> anyhow::Result<Value> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .arg("--")
        .args(args);
    let out = cmd.output().context("wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    Ok(parse_wrk(&text))
}

async fn ocsp_bench(env: &Env, server: &setup::Running, seconds: u32) -> anyhow::Result<Value> {
    let requests = env.ocsp_requests()?;
    let req_file = env.path("ocsp-requests.hex");
    std::fs::write(&req_file, requests.iter().map(hex::encode).collect::<Vec<_>>().join("\n"))?;
    let script = env.path("post.lua");
    std::fs::write(&script, LUA_POST)?;

    // Pre-signed responses for cfssl: fetched from our responder, which also
    // warms our cache the way a day of traffic would.
    let responses = server.fetch_ocsp(&requests).await?;
    let resp_file = env.path("cfssl-responses.txt");
    std::fs::write(
        &resp_file,
        responses
            .iter()
            .map(|r| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, r))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    )?;

    // openssl's responder wedges on connections wrk abandons at the end of a
    // run, so each run gets fresh responders.
    let start_refs = || -> anyhow::Result<(Proc, u16, Proc, u16)> {
        let openssl_port = free_port();
        let openssl = Proc::spawn(
            Command::new("openssl")
                .args(["ocsp", "-index"])
                .arg(env.openssl_index())
                .args(["-port", &openssl_port.to_string(), "-rsigner"])
                .arg(env.path("ca/ocsp.pem"))
                .arg("-rkey")
                .arg(env.plain_key("ocsp")?)
                .arg("-CA")
                .arg(env.path("ca/issuing.pem"))
                .args(["-nmin", "1", "-multi", "2", "-ignore_err"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?
        .with_stragglers(format!("-port {openssl_port} "));
        let cfssl_port = free_port();
        let cfssl = Proc::spawn(
            Command::new("cfssl")
                .args(["ocspserve", "-address", "127.0.0.1", "-port", &cfssl_port.to_string(), "-responses"])
                .arg(&resp_file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        Ok((openssl, openssl_port, cfssl, cfssl_port))
    };
    let mut rows = Vec::new();
    for connections in [16, 64] {
        let (_openssl, openssl_port, _cfssl, cfssl_port) = start_refs()?;
        // A bare connect-and-close probe wedges openssl's responder, so
        // readiness is checked with a real request.
        setup::wait_ocsp(&format!("127.0.0.1:{openssl_port}"), &requests[0]).await?;
        setup::wait_ocsp(&format!("127.0.0.1:{cfssl_port}"), &requests[0]).await?;
        let targets = [
            ("connect-pki", format!("http://{}/ocsp", server.public)),
            ("openssl ocsp -multi 2", format!("http://127.0.0.1:{openssl_port}/")),
            ("cfssl ocspserve", format!("http://127.0.0.1:{cfssl_port}/")),
        ];
        for (name, url) in &targets {
            let r = wrk(url, &script, &[&req_file.display().to_string()], connections, seconds)?;
            eprintln!(
                "   {name:24} c={connections:2}: {} req/s, p50 {} ms, p99 {} ms {}",
                r["rps"], r["p50_ms"], r["p99_ms"], r["socket_errors"]
            );
            rows.push(json!({"target": name, "connections": connections, "result": r}));
        }
    }
    Ok(json!({"certificates": requests.len(), "revoked_share": 0.1, "seconds": seconds, "runs": rows}))
}

/// Two instances on one PostgreSQL database: revoke through A, measure until
/// B refuses the handshake.
async fn cross_instance(n: usize) -> anyhow::Result<Value> {
    use sqlx::Connection;
    let admin_url =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("cpki_bench_{}", std::process::id());
    let mut conn =
        sqlx::PgConnection::connect(&admin_url).await.context("PostgreSQL for the cross-instance benchmark")?;
    sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut conn).await?;
    sqlx::query(&format!("create database {name}")).execute(&mut conn).await?;
    let url = format!("{}/{name}", admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base));
    let result = async {
        let env = Env::create_on(0, n, Some(url)).await?;
        let a = env.serve_named("ready-a.json")?;
        let b = env.serve_named("ready-b.json")?;
        let r = setup::refusal_across(&env, &a, &b).await?;
        drop((a, b));
        anyhow::Ok(r)
    }
    .await;
    let _ = sqlx::query(&format!("drop database if exists {name} with (force)")).execute(&mut conn).await;
    result
}

async fn enroll_bench(env: &Env, server: &setup::Running, seconds: u32) -> anyhow::Result<Value> {
    let bodies = env.enroll_bodies(6_000).await?;
    let file = env.path("enroll.jsonl");
    std::fs::write(&file, bodies.join("\n"))?;
    let script = env.path("enroll.lua");
    std::fs::write(&script, LUA_JSON)?;
    let r =
        wrk(&format!("http://{}/api/v1/enroll", server.public), &script, &[&file.display().to_string()], 16, seconds)?;
    let ok = r["requests"].as_f64().unwrap_or(0.0) - r["non_2xx"].as_f64().unwrap_or(0.0);
    let per_s = ok / f64::from(seconds);
    eprintln!("   {per_s:.0} enrollments/s (p50 {} ms, p99 {} ms, {} refused)", r["p50_ms"], r["p99_ms"], r["non_2xx"]);
    Ok(json!({"enrollments_per_s": per_s, "wrk": r}))
}

const LUA_POST: &str = r#"
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

const LUA_JSON: &str = r#"
local bodies = {}
local i = 0
local step = 1
init = function(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, line)
  end
  -- Each thread takes every other body, so no code is sent twice.
  i = thread_id or 0
end
setup = function(thread)
  thread:set("thread_id", (counter or 0))
  counter = (counter or 0) + 1
end
request = function()
  i = i + 2
  if i > #bodies then i = (i % 2) + 1 end
  return bodies[i]
end
"#;

fn markdown(r: &Value) -> String {
    let mut s = String::new();
    s.push_str("| benchmark | connect-pki | reference | target |\n|---|---|---|---|\n");
    if let Some(runs) = r["ocsp"]["runs"].as_array() {
        for c in [16, 64] {
            let get = |name: &str| {
                runs.iter()
                    .find(|x| x["target"] == name && x["connections"] == c)
                    .map(|x| x["result"].clone())
                    .unwrap_or_default()
            };
            let ours = get("connect-pki");
            let ossl = get("openssl ocsp -multi 2");
            let cfssl = get("cfssl ocspserve");
            let ratio =
                |a: &Value, b: &Value| a["rps"].as_f64().zip(b["rps"].as_f64()).map(|(a, b)| a / b).unwrap_or(0.0);
            s.push_str(&format!(
                "| OCSP POST, {c} connections ({} certs) | {:.0} req/s, p50 {} ms, p99 {} ms | openssl {:.0} req/s (×{:.1}), cfssl {:.0} req/s (×{:.1}) | ≥5× openssl, ≥3× cfssl, p99 < 10 ms |\n",
                r["ocsp"]["certificates"], ours["rps"].as_f64().unwrap_or(0.0), ours["p50_ms"], ours["p99_ms"],
                ossl["rps"].as_f64().unwrap_or(0.0), ratio(&ours, &ossl), cfssl["rps"].as_f64().unwrap_or(0.0), ratio(&ours, &cfssl)
            ));
        }
    }
    if let Some(rows) = r["crl"].as_array() {
        for row in rows {
            s.push_str(&format!(
                "| CRL rebuild, {} revoked | {:.1} ms, {} bytes | openssl ca -gencrl {:.1} ms, {} bytes | < 150 ms at 100 000 |\n",
                row["entries"], row["connect_pki_ms"].as_f64().unwrap_or(0.0), row["connect_pki_bytes"],
                row["openssl_ms"].as_f64().unwrap_or(0.0), row["openssl_bytes"]
            ));
        }
    }
    let f = &r["refusal"];
    s.push_str(&format!(
        "| revoke call → refused handshake ({} revocations) | from sending the call: p50 {:.1} ms, p99 {:.1} ms; after the response: p50 {:.1} ms, p99 {:.1} ms; refused at the first attempt {}/{} | — | 0 ms after the response |\n",
        f["revocations"], f["from_call_p50_ms"].as_f64().unwrap_or(0.0), f["from_call_p99_ms"].as_f64().unwrap_or(0.0),
        f["after_response_p50_ms"].as_f64().unwrap_or(0.0), f["after_response_p99_ms"].as_f64().unwrap_or(0.0),
        f["first_attempt_refused"], f["revocations"]
    ));
    let x = &r["cross_instance"];
    s.push_str(&format!(
        "| revoke on instance A → refused at instance B (PostgreSQL, {} revocations) | after A's response: p50 {:.1} ms, p99 {:.1} ms | — | p99 < 500 ms |\n",
        x["revocations"], x["after_response_p50_ms"].as_f64().unwrap_or(0.0), x["after_response_p99_ms"].as_f64().unwrap_or(0.0)
    ));
    let h = &r["handshake"];
    s.push_str(&format!(
        "| mTLS handshakes (in memory, 1 core) | with live check {:.0}/s | without {:.0}/s ({:+.1} %) | within 10 % |\n",
        h["with_live_check_per_s"].as_f64().unwrap_or(0.0), h["without_per_s"].as_f64().unwrap_or(0.0), h["overhead_percent"].as_f64().unwrap_or(0.0)
    ));
    s.push_str(&format!(
        "| revocation index, {} serials | {:.1} MiB resident | — | < 100 MiB |\n",
        r["memory"]["serials"],
        r["memory"]["resident_mib"].as_f64().unwrap_or(0.0)
    ));
    s.push_str(&format!(
        "| enrollment with a CSR (SQLite, 16 connections) | {:.0} certificates/s, p99 {} ms | — | ≥ 500/s |\n",
        r["enroll"]["enrollments_per_s"].as_f64().unwrap_or(0.0),
        r["enroll"]["wrk"]["p99_ms"]
    ));
    s
}
