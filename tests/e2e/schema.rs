//! Schemathesis against the served OpenAPI document (issue 10), on both
//! listeners of the real binary, as a facility manager with staff and
//! devices to act on: no 5xx, and every answer as the document says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use connect_pki_e2e::fixtures::{PASSWORD, another_device, application};
use connect_pki_e2e::{Backend, Server, both_backends, text, workspace};
use serde_json::{Value, json};

/// The version tests/run installs; the output format and the checks'
/// names below are this version's.
const SCHEMATHESIS: &str = "4.32.5";

/// Schemathesis' built-in checks that apply to this API, on both runs:
/// * `not_a_server_error`: no 5xx, whatever was sent (the first point);
/// * `status_code_conformance`, `content_type_conformance`,
///   `response_schema_conformance`, `response_headers_conformance`: every
///   answer, errors included, is one the document lists, in the type and shape
///   it gives;
/// * `negative_data_rejection`: what the document rules out (unknown fields,
///   wrong types, a serial that is no hex) is refused with a 4xx, never acted on;
/// * `unsupported_method`, `allow_header_conformance`: a method a path does
///   not have is a 405 with `Allow`;
/// * `use_after_free`, `ensure_resource_availability`: what the stateful phase
///   created or deleted stays so.
///
/// Left out, with the reason:
/// * `positive_data_acceptance`: JSON Schema cannot say what makes a CSR, an
///   enrollment code or an application valid (a CSR must verify, an outside
///   facility needs a department), so schema-valid input is rightly refused;
/// * `ignored_auth`, `object_level_authorization`: the credential is the TLS
///   client certificate, which schemathesis cannot take away or swap per
///   call; tests/api/authorization.rs covers both matrix-wise;
/// * `missing_required_header`: the document has no header parameters.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance,negative_data_rejection,unsupported_method,\
allow_header_conformance,use_after_free,ensure_resource_availability";

/// Test cases per operation and phase: enough for every operation to reach
/// its handler with existing ids and still fit in the time the suite has.
const MAX_EXAMPLES: &str = "25";

/// Whether the `schemathesis` command runs. Outside CI a machine without it
/// skips this test; under CI its absence is a failure.
fn schemathesis_installed() -> bool {
    let out = Command::new("schemathesis").arg("--version").output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success() && text(o).contains(SCHEMATHESIS));
    if !ok && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("schemathesis {SCHEMATHESIS} is not installed (tests/run installs it): {out:?}");
    }
    ok
}

/// The facility the run acts in: its manager and the staff's devices.
struct Facility {
    manager: PathBuf,
    /// The manager's own user, device and certificate: never touched by the run.
    own: (i64, i64, String),
    staff_serials: Vec<String>,
}

/// An approved facility whose manager registered three staff, each with an
/// enrolled device (the first with two), so that ids and serials exist.
fn facility(s: &Server) -> Facility {
    let admin = s.admin_pem();
    let (status, created) =
        s.public_api("POST", "/api/v1/applications", Some(&application("相談センター北", "kita.kanri")));
    assert_eq!(status, 201, "{created}");
    let app = created["id"].as_i64().expect("id");
    let (status, approval) = s.api("POST", &format!("/api/v1/applications/{app}/approve"), Some(&admin), None);
    assert_eq!(status, 200, "{approval}");
    let facility = approval["facility_id"].as_i64().expect("facility");
    let code = approval["enrollment_code"]["code"].as_str().expect("code");
    let manager = s.enroll_csr(code, Some(PASSWORD), "manager", "/CN=kita.kanri");
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&manager), None);
    assert_eq!(status, 200, "{me}");
    let own = (
        me["user_id"].as_i64().expect("user"),
        me["device_id"].as_i64().expect("device"),
        me["serial"].as_str().expect("serial").to_string(),
    );
    let mut staff_serials = Vec::new();
    for (n, login) in ["kita.staff1", "kita.staff2", "kita.staff3"].into_iter().enumerate() {
        let body = json!({"display_name": login, "login_id": login, "email": format!("{login}@example.test")});
        let (status, user) =
            s.api("POST", &format!("/api/v1/facilities/{facility}/users"), Some(&manager), Some(&body));
        assert_eq!(status, 201, "{user}");
        let user = user["id"].as_i64().expect("id");
        let devices = if n == 0 { 2 } else { 1 };
        for d in 1..=devices {
            let device = another_device(s, &manager, user, login, &format!("{login}-{d}"));
            staff_serials.push(device.serial);
        }
    }
    Facility { manager, own, staff_serials }
}

/// Values the generator draws from half of the time, so that calls reach
/// existing users, devices, escalations and certificates instead of 404s.
fn config(f: &Facility) -> String {
    let serials: Vec<String> = f.staff_serials.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "[dictionaries.ids]\nvalues = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n\
         [dictionaries.serials]\nvalues = [{}]\n\
         [parameters]\n\
         \"path.id\" = {{ dictionary = \"ids\", probability = 0.5 }}\n\
         \"path.serial\" = {{ dictionary = \"serials\", probability = 0.5 }}\n\
         \"body.device_id\" = {{ dictionary = \"ids\", probability = 0.5 }}\n",
        serials.join(", ")
    )
}

/// One schemathesis run over the document in `dir`: deterministic generation
/// (no seed to vary, and no example database carried between runs), one
/// worker so that the calls come in the same order every time.
fn schemathesis(dir: &Path, f: &Facility, args: &[&str], env: &[(&str, &str)]) -> Output {
    let own_user = f.own.0.to_string();
    let own_device = f.own.1.to_string();
    Command::new("schemathesis")
        .args(["--no-color", "--config-file", "schemathesis.toml", "run", "openapi.json", "--checks"])
        .arg(format!("{CHECKS},https_required_on_plain_http"))
        .args(["--generation-deterministic", "--workers", "1"])
        .args(["--max-examples", MAX_EXAMPLES, "--request-timeout", "20"])
        .args(args)
        .current_dir(dir)
        .env("SCHEMATHESIS_HOOKS", "schema_hooks")
        .env("PYTHONPATH", workspace().join("tests/py"))
        .env("SCHEMA_OWN_USER", own_user)
        .env("SCHEMA_OWN_DEVICE", own_device)
        .env("SCHEMA_OWN_SERIAL", &f.own.2)
        .envs(env.iter().copied())
        .output()
        .expect("schemathesis runs")
}

fn assert_passed(what: &str, out: &Output, s: &Server) {
    assert!(
        out.status.success(),
        "schemathesis on the {what} found failures:\n{}\n--- server log (tail) ---\n{}",
        text(out),
        tail(&s.log(), 60)
    );
}

fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn served_document_holds_on_both_listeners(backend: Backend) {
    if !schemathesis_installed() {
        eprintln!("schemathesis {SCHEMATHESIS} is not installed: skipped (tests/run installs it; CI fails instead)");
        return;
    }
    let s = Server::start(backend).await;
    let f = facility(&s);
    let dir = s.scratch("schemathesis");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (status, doc) = s.api("GET", "/api/v1/openapi.json", Some(&f.manager), None);
    assert_eq!(status, 200, "{doc}");
    std::fs::write(dir.join("openapi.json"), doc.to_string()).expect("write");
    std::fs::write(dir.join("schemathesis.toml"), config(&f)).expect("write");
    let root = s.data("ca/root.pem").display().to_string();
    let manager = f.manager.display().to_string();

    // 1. HTTPS, every operation, as the manager.
    let started = Instant::now();
    let url = format!("https://{}", s.api);
    let out = schemathesis(&dir, &f, &["--url", &url, "--request-cert", &manager, "--tls-verify", &root], &[]);
    let https_time = started.elapsed();
    assert_passed("HTTPS listener", &out, &s);

    // 2. Plain HTTP, the operations it answers: all refused unread.
    let started = Instant::now();
    let url = format!("http://{}", s.public);
    let out = schemathesis(
        &dir,
        &f,
        // Every method on these paths is refused by the guard before routing
        // (nothing is read in clear), so a wrong method is a 403, not a 405.
        &["--url", &url, "--include-tag", "public", "--exclude-checks", "unsupported_method,allow_header_conformance"],
        &[("SCHEMA_EXPECT_HTTPS_REQUIRED", "1")],
    );
    let plain_time = started.elapsed();
    assert_passed("plain listener", &out, &s);
    eprintln!("schemathesis on {backend:?}: HTTPS {https_time:.1?}, plain HTTP {plain_time:.1?}");

    after_the_run(&s, &f);
}
both_backends!(served_document_holds_on_both_listeners);

/// The run was neither locked out part-way nor harmless: the manager still
/// gets in, the staff's certificates were changed by generated calls, and
/// the server answered no request with a 5xx.
fn after_the_run(s: &Server, f: &Facility) {
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&f.manager), None);
    assert_eq!(status, 200, "the manager was locked out by the run: {me}");
    let (status, users) =
        s.api("GET", &format!("/api/v1/facilities/{}/users", me["facility_id"]), Some(&f.manager), None);
    assert_eq!(status, 200, "{users}");
    let staff_certificates: Vec<&Value> = users
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["id"] != f.own.0)
        .flat_map(|u| u["devices"].as_array().into_iter().flatten())
        .flat_map(|d| d["certificates"].as_array().into_iter().flatten())
        .collect();
    assert!(
        staff_certificates.iter().any(|c| c["status"] != "valid"),
        "no generated call changed a staff certificate: {users}"
    );
    let log = s.log();
    let server_errors: Vec<&str> =
        log.lines().filter(|l| l.contains("request method=") && l.contains(" status=5")).collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:#?}");
    assert!(!log.contains("panicked"), "{}", tail(&log, 60));
}
