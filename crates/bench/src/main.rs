//! Benchmarks of connect-pki, side by side with the reference tools in one
//! run (DESIGN §7). Not tests: figures, printed as a Markdown table and saved
//! as JSON.
//!
//! usage: cargo run --release -p connect-pki-bench [-- --quick] [-- --only SECTION,…]
//!
//! `--quick` is a smaller, shorter run for development. `--only` runs some
//! sections: crl, memory, handshake, ocsp, recording (OCSP with the
//! relying-party record on and off), refusal, priority (revoke calls while
//! OCSP is answered flat out), enroll, cross (PostgreSQL),
//! bulk-sqlite, bulk-postgres (facility close and concurrent revokers).
//!
//! Needs: wrk, openssl, cfssl (Debian golang-cfssl), PostgreSQL
//! (`TEST_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/test).
//! Every server is started on 127.0.0.1 and stopped at the end.

mod enroll;
mod hostile;
mod ocsp;
mod priority;
mod revoke;
mod setup;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use setup::Env;

const SECTIONS: &[&str] = &[
    "crl",
    "memory",
    "handshake",
    "ocsp",
    "recording",
    "refusal",
    "priority",
    "hostile",
    "enroll",
    "cross",
    "bulk-sqlite",
    "bulk-postgres",
];

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
    let only: Vec<String> = match args.iter().position(|a| a == "--only") {
        Some(i) => args.get(i + 1).context("--only needs a list of sections")?.split(',').map(String::from).collect(),
        None => SECTIONS.iter().map(|s| s.to_string()).collect(),
    };
    if let Some(bad) = only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        bail!("unknown section {bad:?} (sections: {})", SECTIONS.join(", "));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(quick, &only))
}

/// The reference and load tools the sections drive.
fn needs_tools() -> anyhow::Result<()> {
    for tool in ["wrk", "openssl", "cfssl"] {
        if Command::new("which").arg(tool).output().map(|o| !o.status.success()).unwrap_or(true) {
            bail!("{tool} is needed (apt-get install wrk openssl golang-cfssl)");
        }
    }
    Ok(())
}

/// Certificates, and devices to revoke for the refusal, priority and
/// hostile sections.
fn sizes(quick: bool) -> (usize, usize, usize, usize) {
    let sizes = if quick { (2_000, 100, 200, 100) } else { (10_000, 1_000, 1_600, 600) };
    eprintln!(
        "== setting up {} certificates (10 % revoked) and {} devices to revoke",
        sizes.0,
        sizes.1 + sizes.2 + sizes.3
    );
    sizes
}

async fn run(quick: bool, only: &[String]) -> anyhow::Result<()> {
    needs_tools()?;
    let want = |s: &str| only.iter().any(|o| o == s);
    let mut results = serde_json::Map::new();
    results.insert(
        "machine".into(),
        json!({"cores": std::thread::available_parallelism().map_or(0, |n| n.get()), "load_average_at_start": load_average()}),
    );
    if ["crl", "handshake", "ocsp", "recording", "refusal", "priority", "hostile", "enroll"].iter().any(|s| want(s)) {
        let (n_certs, n_refusal, n_priority, n_hostile) = sizes(quick);
        let env = Env::create(n_certs, n_refusal + n_priority + n_hostile).await?;
        let (refusal_devices, rest) = env.to_revoke.split_at(n_refusal);
        let (priority_devices, hostile_devices) = rest.split_at(n_priority);
        if want("crl") {
            eprintln!("== CRL rebuild");
            results.insert("crl".into(), crl_bench(&env, quick)?);
        }
        if want("handshake") {
            eprintln!("== TLS handshakes with and without the live check");
            results.insert("handshake".into(), setup::handshake_bench(&env, if quick { 500 } else { 3_000 })?);
        }
        let server = env.serve()?;
        if want("ocsp") {
            eprintln!("== OCSP throughput: connect-pki, openssl ocsp, cfssl ocspserve");
            let (seconds, threads): (u32, &[u32]) = if quick { (3, &[2]) } else { (10, &[2, 1]) };
            results.insert("ocsp".into(), ocsp::ocsp_bench(&env, &server, seconds, threads).await?);
        }
        if want("recording") {
            eprintln!("== OCSP throughput with the relying-party record on and off");
            let (seconds, rounds) = if quick { (3, 1) } else { (10, 3) };
            results.insert("recording".into(), ocsp::recording_bench(&env, seconds, rounds).await?);
        }
        if want("refusal") {
            eprintln!("== revocation to refusal");
            results.insert("refusal".into(), setup::refusal_bench(&env, refusal_devices, &server).await?);
        }
        if want("priority") {
            eprintln!("== revoke calls while OCSP is answered flat out");
            results.insert("priority".into(), priority::revoke_under_ocsp_load(&env, &server, priority_devices).await?);
        }
        if want("hostile") {
            eprintln!("== a manager's revoke and the emergency page under hostile load");
            results.insert("hostile".into(), hostile::hostile(&env, hostile_devices).await?);
        }
        if want("enroll") {
            results.insert("enroll".into(), enroll::section(&env, server, if quick { 2 } else { 5 }).await?);
        }
        if std::env::var("BENCH_KEEP").is_ok() {
            eprintln!("(kept {})", env.keep().display());
        }
    }
    if want("memory") {
        eprintln!("== memory of the revocation index");
        let n = if quick { 200_000 } else { 1_000_000 };
        let out = Command::new(std::env::current_exe()?).args(["__memory", &n.to_string()]).output()?;
        results.insert("memory".into(), serde_json::from_slice(&out.stdout).context("memory benchmark output")?);
    }
    if want("cross") {
        eprintln!("== revocation on one instance → refusal on another (PostgreSQL)");
        results.insert("cross_instance".into(), revoke::cross_instance(if quick { 50 } else { 300 }).await?);
    }
    // Facility close: 100 users × 100 certificates; then 64 revokers.
    let (users, per_revoker) = if quick { (10, 5) } else { (100, 40) };
    for (section, postgres) in [("bulk-sqlite", false), ("bulk-postgres", true)] {
        if want(section) {
            eprintln!("== facility close and 64 concurrent revokers ({section})");
            results.insert(section.replace('-', "_"), revoke::bulk(postgres, users, 100, 64, per_revoker).await?);
        }
    }

    let out = Value::Object(results);
    let file = setup::workspace().join("target/bench-results.json");
    std::fs::write(&file, serde_json::to_string_pretty(&out)?)?;
    println!("{}", markdown(&out));
    eprintln!("(saved to {})", file.display());
    Ok(())
}

/// The 1-minute load average (other work on the machine skews every figure).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(-1.0)
}

/// The `p` quantile (0..=1) of `v`, nearest rank.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A child process stopped when dropped: SIGTERM, then SIGKILL for whatever
/// is left. A process started with [`Proc::spawn_group`] leads a process group
/// of its own and the whole group is stopped (openssl's `-multi` workers
/// survive their parent and spin on connections a load tool abandoned).
pub struct Proc {
    child: Child,
    group: bool,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> anyhow::Result<Self> {
        Ok(Self { child: cmd.spawn()?, group: false })
    }

    pub fn spawn_group(cmd: &mut Command) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt;
        Ok(Self { child: cmd.process_group(0).spawn()?, group: true })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let id = self.child.id();
        let target = if self.group { format!("-{id}") } else { id.to_string() };
        let _ = Command::new("kill").args([sig, "--", &target]).stderr(Stdio::null()).status();
    }

    /// Whether any process of the group is still there.
    fn group_alive(&self) -> bool {
        let id = self.child.id().to_string();
        Command::new("pgrep").args(["-g", &id]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal("-TERM");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited && !(self.group && self.group_alive()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// One `wrk` run: `threads` load threads over `connections` connections.
pub fn wrk(
    url: &str,
    script: &Path,
    args: &[&str],
    threads: u32,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<Value> {
    let mut cmd = Command::new("wrk");
    cmd.args([&format!("-t{threads}"), &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .arg("--")
        .args(args);
    let out = cmd.output().context("wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    Ok(parse_wrk(&text))
}

/// The benchmark results as a markdown table: ours, the reference, the target.
fn markdown(r: &Value) -> String {
    let mut s = String::new();
    s.push_str("| benchmark | connect-pki | reference | target |\n|---|---|---|---|\n");
    ocsp_rows(r, &mut s);
    crl_rows(r, &mut s);
    refusal_rows(r, &mut s);
    s.push_str(&priority::row(r));
    s.push_str(&hostile::row(r));
    bulk_rows(r, &mut s);
    single_rows(r, &mut s);
    s
}

/// A number of the results; 0 where a measurement is missing.
fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn ocsp_rows(r: &Value, s: &mut String) {
    if let Some(runs) = r["ocsp"]["runs"].as_array() {
        let get = |name: &str, t: &Value, c: &Value| {
            runs.iter()
                .find(|x| x["target"] == name && &x["threads"] == t && &x["connections"] == c)
                .map(|x| x["result"].clone())
                .unwrap_or_default()
        };
        for cell in r["ocsp"]["summary"]["cells"].as_array().into_iter().flatten() {
            let (t, c) = (&cell["threads"], &cell["connections"]);
            let ours = get(ocsp::OURS, t, c);
            s.push_str(&format!(
                "| OCSP POST, {c} connections, wrk {t} threads ({} certs) | {:.0} req/s, p50 {} ms, p99 {} ms | openssl {:.0} req/s (×{:.1}); cfssl with our responses {:.0} req/s (×{:.1}); cfssl with CA-signed responses {:.0} req/s (×{:.1}) | ≥5× openssl, ≥3× cfssl, p99 < 10 ms |\n",
                r["ocsp"]["certificates"], number(&ours["rps"]), ours["p50_ms"], ours["p99_ms"],
                number(&get(ocsp::OPENSSL, t, c)["rps"]), number(&cell["vs_openssl"]),
                number(&get(ocsp::CFSSL, t, c)["rps"]), number(&cell["vs_cfssl_our_responses"]),
                number(&get(ocsp::CFSSL_CA, t, c)["rps"]), number(&cell["vs_cfssl_ca_signed"]),
            ));
        }
        let lo = &r["ocsp"]["summary"]["least_favourable_vs_openssl"];
        let lc = &r["ocsp"]["summary"]["least_favourable_vs_cfssl"];
        s.push_str(&format!(
            "| OCSP POST, least favourable ratio | ×{:.1} openssl ({} connections, wrk {} threads); ×{:.1} cfssl's best ({} connections, wrk {} threads) | — | ≥5× openssl, ≥3× cfssl |\n",
            number(&lo["ratio"]), lo["connections"], lo["threads"], number(&lc["ratio"]), lc["connections"], lc["threads"]
        ));
    }
}

fn crl_rows(r: &Value, s: &mut String) {
    if let Some(rows) = r["crl"].as_array() {
        for row in rows {
            s.push_str(&format!(
                "| CRL rebuild, {} revoked | {:.1} ms, {} bytes | openssl ca -gencrl {:.1} ms, {} bytes | < 150 ms at 100 000 |\n",
                row["entries"], number(&row["connect_pki_ms"]), row["connect_pki_bytes"],
                number(&row["openssl_ms"]), row["openssl_bytes"]
            ));
        }
    }
}

/// How soon a revocation refuses the handshake, on one instance and across two.
fn refusal_rows(r: &Value, s: &mut String) {
    let x = &r["refusal"];
    if x.is_object() {
        s.push_str(&format!(
            "| revoke call → refused handshake ({} revocations) | from sending the call: p50 {:.1} ms, p99 {:.1} ms; after the response: p50 {:.1} ms, p99 {:.1} ms; refused at the first attempt {}/{} | — | 0 ms after the response |\n",
            x["revocations"], number(&x["from_call_p50_ms"]), number(&x["from_call_p99_ms"]),
            number(&x["after_response_p50_ms"]), number(&x["after_response_p99_ms"]), x["first_attempt_refused"], x["revocations"]
        ));
    }
    for (mode, label, target) in [
        ("listen_notify", "LISTEN/NOTIFY", "p99 < 10 ms"),
        ("polling_only", "polling only, `--feed-listen false`", "p99 < 500 ms"),
    ] {
        let x = &r["cross_instance"][mode];
        if x.is_object() {
            s.push_str(&format!(
                "| revoke on instance A → refused at instance B (PostgreSQL, {label}, {} revocations) | B's handshake refused (B's index): p50 {:.1} ms, p99 {:.1} ms after A's response; first refusal of either kind (handshake, or the API's per-request database check): p50 {:.1} ms, p99 {:.1} ms | — | {target} |\n",
                x["revocations"], number(&x["handshake_refused_after_response_p50_ms"]), number(&x["handshake_refused_after_response_p99_ms"]),
                number(&x["after_response_p50_ms"]), number(&x["after_response_p99_ms"])
            ));
        }
    }
    let x = &r["cross_instance"]["every_instance"];
    if x.is_object() {
        s.push_str(&format!(
            "| revoke on A → applied on all three instances (PostgreSQL, `--revoke-waits-for-every-instance true`, {} revocations) | the call, which answers once B and C recorded it: p50 {:.1} ms, p99 {:.1} ms; answered \"all applied\" {}/{} | — | — |\n",
            x["revocations"], number(&x["call_p50_ms"]), number(&x["call_p99_ms"]), x["answered_all_applied"], x["revocations"]
        ));
    }
}

fn bulk_rows(r: &Value, s: &mut String) {
    for (key, db) in [("bulk_sqlite", "SQLite"), ("bulk_postgres", "PostgreSQL")] {
        let x = &r[key]["concurrent_revokes"];
        if x.is_object() {
            s.push_str(&format!(
                "| {} concurrent revokers, one instance ({db}, {} revocations) | {:.0} revocations/s; revoke call p50 {:.1} ms, p99 {:.1} ms; {} CRL builds, CRL {} → {} entries | — | — |\n",
                x["revokers"], x["revocations"], number(&x["revocations_per_s"]), number(&x["p50_ms"]), number(&x["p99_ms"]),
                x["crl_builds"], x["crl_entries_before"], x["crl_entries_after"]
            ));
        }
    }
    for (key, db) in [("bulk_sqlite", "SQLite"), ("bulk_postgres", "PostgreSQL")] {
        let x = &r[key]["facility_close"];
        if x.is_object() {
            s.push_str(&format!(
                "| facility close, {} valid certificates ({db}) | call returned after {:.0} ms, CRL then served with {} entries | — | < 1 s |\n",
                x["certificates"], number(&x["close_call_ms"]), x["crl_entries_after"]
            ));
        }
    }
}

/// Handshake overhead, index memory and enrollment rate.
fn single_rows(r: &Value, s: &mut String) {
    let h = &r["handshake"];
    if h.is_object() {
        s.push_str(&format!(
            "| mTLS handshakes (in memory, 1 core) | with live check {:.0}/s | without {:.0}/s ({:+.1} %) | within 10 % |\n",
            number(&h["with_live_check_per_s"]), number(&h["without_per_s"]), number(&h["overhead_percent"])
        ));
    }
    if r["memory"].is_object() {
        s.push_str(&format!(
            "| revocation index, {} serials | {:.1} MiB resident | — | < 100 MiB |\n",
            r["memory"]["serials"],
            number(&r["memory"]["resident_mib"])
        ));
    }
    s.push_str(&enroll::rows(r));
}
