//! Enrollment with a CSR, by the JSON API and by EST (issue 26) side by
//! side in one run: the same server, the same client (wrk, 2 threads, 16
//! connections over TLS), the same CSR, a fresh one-time code per request.

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

fn run(env: &Env, name: &str, url: &str, lines: &[String], make: &str, seconds: u32) -> anyhow::Result<Value> {
    let file = env.path(&format!("{name}.lines"));
    std::fs::write(&file, lines.join("\n"))?;
    let script = env.path(&format!("{name}.lua"));
    std::fs::write(&script, format!("{make}{LUA}"))?;
    let r = wrk(url, &script, &[&file.display().to_string()], 2, 16, seconds)?;
    let ok = r["requests"].as_f64().unwrap_or(0.0) - r["non_2xx"].as_f64().unwrap_or(0.0);
    let per_s = ok / f64::from(seconds);
    eprintln!("   {name}: {per_s:.0} enrollments/s (p50 {} ms, p99 {} ms, {} refused)", r["p50_ms"], r["p99_ms"], r["non_2xx"]);
    Ok(json!({"enrollments_per_s": per_s, "wrk": r}))
}

pub async fn enrollments(env: &Env, server: &Running, seconds: u32) -> anyhow::Result<Value> {
    let n = 6_000;
    let bodies = env.enroll_bodies(n).await?;
    let json_api = run(env, "enroll-json", &format!("https://{}/api/v1/enroll", server.api), &bodies, MAKE_JSON, seconds)?;
    let est_lines = env.est_requests(n).await?;
    let url = format!("https://{}/.well-known/est/simpleenroll", server.api);
    let est = run(env, "enroll-est", &url, &est_lines, MAKE_EST, seconds)?;
    Ok(json!({"enrollments_per_s": json_api["enrollments_per_s"], "wrk": json_api["wrk"], "est": est}))
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
    s
}
