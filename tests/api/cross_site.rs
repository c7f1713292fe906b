//! No cross-site writes: a page the operator has open in the same browser
//! sends the operator's client certificate with its requests. For every
//! state-changing route in the OpenAPI document, a form POST and a
//! `text/plain` POST from a foreign origin, and a JSON request a browser
//! marks cross-site, are refused with the valid admin certificate — and
//! nothing changes.

use connect_pki_e2e::client::Req;
use connect_pki_e2e::fixtures::application;
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

const EVIL: &str = "https://evil.example";

/// The ids a route's path parameters are filled with.
struct Targets {
    facility: i64,
    user: i64,
    device: i64,
    serial: String,
    application: i64,
    escalation: i64,
}

async fn targets(app: &TestApp) -> Targets {
    let d = app.device("victim").await;
    let other = app.device("reported").await;
    let (status, created) =
        app.public_api("POST", "/api/v1/applications", Some(&application("標的施設", "t.mgr"))).await;
    assert_eq!(status, 201, "{created}");
    let body = json!({"device_id": other.device_id, "note": "電話で受付"});
    let (status, e) = app.api("POST", "/api/v1/escalations", Some(&app.admin), Some(&body)).await;
    assert_eq!(status, 201, "{e}");
    Targets {
        facility: 1,
        user: d.user_id,
        device: d.device_id,
        serial: d.serial.clone(),
        application: created["id"].as_i64().expect("id"),
        escalation: e["id"].as_i64().expect("id"),
    }
}

fn fill(path: &str, t: &Targets) -> String {
    let id = if path.starts_with("/api/v1/facilities/") {
        t.facility
    } else if path.starts_with("/api/v1/users/") {
        t.user
    } else if path.starts_with("/api/v1/devices/") {
        t.device
    } else if path.starts_with("/api/v1/applications/") {
        t.application
    } else {
        t.escalation
    };
    path.replace("{serial}", &t.serial).replace("{id}", &id.to_string())
}

/// The requests a hostile page can make the browser send.
fn attacks(method: &str, path: &str) -> Vec<(&'static str, Req, u16, &'static str)> {
    let with = |mut r: Req, headers: &[(&str, &str)]| {
        r.headers.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        r
    };
    let form = Req::new(method, path).form(&[("reason", "keyCompromise")]);
    let text = Req::new(method, path).body("text/plain", r#"{"reason":"keyCompromise"}"#);
    let json = Req::new(method, path).json(&json!({"reason": "keyCompromise"}));
    vec![
        ("form from a foreign origin", with(form, &[("origin", EVIL)]), 403, "cross_site_request"),
        ("text/plain from a foreign origin", with(text.clone(), &[("origin", EVIL)]), 403, "cross_site_request"),
        (
            "JSON marked cross-site",
            with(json, &[("sec-fetch-site", "cross-site"), ("origin", EVIL)]),
            403,
            "cross_site_request",
        ),
        ("text/plain without an origin", text, 415, "not_json"),
    ]
}

/// The audit log: everything but the refusals, and the refusals.
async fn audit(app: &TestApp) -> (Vec<Value>, Vec<Value>) {
    let (status, log) = app.api("GET", "/api/v1/audit?limit=10000", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{log}");
    log.as_array().expect("audit").iter().cloned().partition(|r| r["action"] != "request.refused")
}

async fn state_changing_routes(app: &TestApp) -> Vec<(String, String)> {
    let (status, doc) = app.api("GET", "/api/v1/openapi.json", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{doc}");
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys().filter(|m| *m != "get") {
            out.push((method.to_uppercase(), path.clone()));
        }
    }
    assert!(out.len() >= 15, "the document lists only {} state-changing routes", out.len());
    out
}

async fn cross_site_writes_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = targets(&app).await;
    let (before, _) = audit(&app).await;
    let mut tried = 0;
    for (method, template) in state_changing_routes(&app).await {
        let path = fill(&template, &t);
        for (what, req, want, code) in attacks(&method, &path) {
            let reply = app.try_mtls(Some(&app.admin), req).await.expect("an answer");
            let body: Value = reply.json();
            assert_eq!(
                (reply.status, body["error"]["code"].as_str()),
                (want, Some(code)),
                "{what}: {method} {path}: {body}"
            );
            tried += usize::from(want == 403);
        }
    }
    let (after, refusals) = audit(&app).await;
    assert_eq!(after, before, "a refused request changed something");
    // Every 403 is on record, as the admin's, counted per route.
    let counted: u64 = refusals.iter().map(|r| r["detail"]["count"].as_u64().expect("a count")).sum();
    assert_eq!(counted, tried as u64, "{refusals:?}");
    assert!(refusals.iter().all(|r| r["actor"] == "user:1" && r["outcome"] == "forbidden"), "{refusals:?}");
    let victim = app.api("GET", &format!("/api/v1/certificates/{}", t.serial), Some(&app.admin), None).await;
    assert_eq!(victim.1["status"], "valid", "{}", victim.1);
    let (_, facility) = app.api("GET", "/api/v1/facilities/1", Some(&app.admin), None).await;
    assert_eq!(facility["status"], "approved", "{facility}");
    same_origin_requests_still_work(&app, &t.serial).await;
}
both_backends!(cross_site_writes_are_refused_and_change_nothing);

/// The same calls from our own origin, or from a client that is no browser,
/// go through.
async fn same_origin_requests_still_work(app: &TestApp, serial: &str) {
    let path = format!("/api/v1/certificates/{serial}/hold");
    let origin = format!("https://{}", app.api);
    let mut req = Req::new("POST", &path).json(&json!({}));
    req.headers.extend([("origin".to_string(), origin), ("sec-fetch-site".to_string(), "same-origin".to_string())]);
    let reply = app.try_mtls(Some(&app.admin), req).await.expect("an answer");
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Browsers that reached the service over TLS stay on TLS.
    assert_eq!(reply.header("strict-transport-security"), Some("max-age=31536000"), "{:?}", reply.headers);
    let path = format!("/api/v1/certificates/{serial}/release");
    let (status, out) = app.api("POST", &path, Some(&app.admin), None).await;
    assert_eq!(status, 200, "{out}");
}

/// Refused requests are counted, not stored one by one (issue 24): twenty
/// refused calls of one route, with twenty different ids, are one audit row
/// with a count of 20; and nothing of that reached the chain before it was
/// read or a minute passed.
async fn refusals_are_counted_not_stored_one_by_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let staff = app.device("refusals-staff").await;
    let rows = |log: &Value| -> Vec<Value> {
        log.as_array().expect("audit").iter().filter(|r| r["action"] == "request.refused").cloned().collect()
    };
    for id in 1..=20 {
        let (status, body) =
            app.api("POST", &format!("/api/v1/facilities/{id}/suspend"), Some(&staff.id), Some(&json!({}))).await;
        assert_eq!(status, 403, "{body}");
    }
    for _ in 0..3 {
        let (status, body) = app.api("GET", "/api/v1/audit", Some(&staff.id), None).await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, log) = app.api("GET", "/api/v1/audit?limit=1000", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{log}");
    let refused = rows(&log);
    let of =
        |route: &str| refused.iter().find(|r| r["target"] == route).unwrap_or_else(|| panic!("{route}: {refused:?}"));
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(of("POST /api/v1/facilities/{id}/suspend")["detail"]["count"], 20, "{refused:?}");
    assert_eq!(of("GET /api/v1/audit")["detail"]["count"], 3, "{refused:?}");
    assert!(refused.iter().all(|r| r["actor"] != "user:1"), "{refused:?}");
}
both_backends!(refusals_are_counted_not_stored_one_by_one);
