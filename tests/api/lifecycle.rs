//! Renewal, the public endpoints' rate limit and the OpenAPI document.

use connect_pki_e2e::client::{Identity, Req};
use connect_pki_e2e::fixtures::application;
use connect_pki_e2e::{AppOptions, Backend, both_backends, spawn_app, spawn_app_with};
use serde_json::{Value, json};

use crate::world::world;

/// Renewal over mTLS: a new certificate for the same device; the old one no
/// longer identifies anyone.
async fn renewal_supersedes_the_presented_certificate(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let (key_der, csr, _) = connect_pki_e2e::builders::csr("hanako");
    let (status, out) =
        app.api("POST", "/api/v1/certificates/renew", Some(&w.staff_a.id), Some(&json!({"csr": csr}))).await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["device_id"], w.staff_a.device_id);
    assert_eq!(out["superseded_serial"], w.staff_a.serial.as_str());
    let cert_der = connect_pki_e2e::builders::pem_der(out["certificate"].as_str().expect("cert"));
    let renewed = Identity { cert_der, key_der };
    let me = app.whoami(&renewed).await;
    assert_eq!((me["device_id"].as_i64(), me["login_id"].as_str()), (Some(w.staff_a.device_id), Some("hanako")));
    // The superseded certificate no longer gets through the handshake.
    let old = app.try_mtls(Some(&w.staff_a.id), Req::new("GET", "/api/v1/whoami")).await;
    assert!(old.is_err(), "superseded certificate accepted: {old:?}");
    let path = format!("/api/v1/certificates/{}", w.staff_a.serial);
    let (_, cert) = app.api("GET", &path, Some(&w.manager_a.id), None).await;
    assert_eq!((cert["status"].as_str(), cert["reason"].as_str()), (Some("superseded"), Some("superseded")), "{cert}");
}
both_backends!(renewal_supersedes_the_presented_certificate);

/// The public endpoints are rate-limited per address, with a JSON 429 that
/// says how long to wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_submissions_are_rate_limited() {
    let app = spawn_app_with(Backend::Sqlite, AppOptions::with(|c| c.rate_limit_per_minute = 10)).await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        let body = application(&format!("施設{i}"), &format!("rl{i:02}"));
        let (status, out) = app.public_api("POST", "/api/v1/applications", Some(&body)).await;
        statuses.push(status);
        if status == 429 {
            assert_eq!(out["error"]["code"], "rate_limited", "{out}");
            assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains("seconds")), "{out}");
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    let reply = app.open(Req::new("POST", "/api/v1/applications").json(&application("x", "rl99"))).await;
    assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
}

/// Every route the API serves, with its method.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/whoami"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/applications"),
    ("get", "/api/v1/applications"),
    ("get", "/api/v1/application-status/{token}"),
    ("get", "/api/v1/terms"),
    ("post", "/api/v1/applications/{id}/approve"),
    ("post", "/api/v1/applications/{id}/reject"),
    ("get", "/api/v1/facilities"),
    ("get", "/api/v1/facilities/{id}"),
    ("post", "/api/v1/facilities/{id}/suspend"),
    ("post", "/api/v1/facilities/{id}/resume"),
    ("post", "/api/v1/facilities/{id}/close"),
    ("post", "/api/v1/facilities/{id}/users"),
    ("get", "/api/v1/facilities/{id}/users"),
    ("post", "/api/v1/users/{id}/enrollment-codes"),
    ("post", "/api/v1/enroll"),
    ("get", "/api/v1/devices/{id}"),
    ("get", "/api/v1/certificates/{serial}"),
    ("get", "/api/v1/certificates/expiring"),
    ("get", "/api/v1/certificates/{serial}/use"),
    ("get", "/api/v1/certificates/{serial}/incident"),
    ("get", "/api/v1/relying-parties"),
    ("post", "/api/v1/certificates/renew"),
    ("post", "/api/v1/certificates/renew-pkcs12"),
    ("get", "/api/v1/audit"),
    ("post", "/api/v1/certificates/{serial}/revoke"),
    ("post", "/api/v1/certificates/{serial}/hold"),
    ("post", "/api/v1/certificates/{serial}/release"),
    ("post", "/api/v1/devices/{id}/lost"),
    ("post", "/api/v1/users/{id}/retire"),
    ("delete", "/api/v1/users/{id}/retirement"),
    ("delete", "/api/v1/users/{id}"),
    ("patch", "/api/v1/users/{id}"),
    ("post", "/api/v1/users/{id}/transfer"),
    ("post", "/api/v1/users/{id}/emergency-password"),
    ("get", "/api/v1/facilities/{id}/review"),
    ("post", "/api/v1/facilities/{id}/review"),
    ("post", "/api/v1/facilities/{id}/managers/{user}/enrollment-codes"),
    ("get", "/api/v1/people"),
    ("get", "/api/v1/facilities/{id}/lifetimes"),
    ("put", "/api/v1/facilities/{id}/lifetimes"),
    ("post", "/api/v1/mdm/challenges"),
    ("post", "/api/v1/mdm/scep-profiles"),
    ("get", "/api/v1/users/{id}/webhook-secret"),
    ("post", "/api/v1/mdm/events"),
    ("post", "/api/v1/emergency"),
    ("get", "/api/v1/escalations"),
    ("post", "/api/v1/escalations"),
    ("post", "/api/v1/escalations/{id}/claim"),
    ("post", "/api/v1/escalations/{id}/resolve"),
    ("get", "/api/v1/escalations/{id}/notifications"),
];

/// The OpenAPI document is generated from the handlers and covers every API
/// route with its error responses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_covers_every_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, doc) = app.api("GET", "/api/v1/openapi.json", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{doc}");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing from the OpenAPI document");
        let responses = op["responses"].as_object().expect("responses");
        assert!(responses.keys().any(|k| k.starts_with('4')), "{method} {path} documents no error response");
        // What the layers before the handler answer is documented too (issue 10).
        let mut expected = vec![if op["tags"][0] == "public" { "403" } else { "401" }];
        if path.contains('{') {
            expected.push("400");
        }
        if *method != "get" {
            expected.extend(["415", "403"]);
        }
        if op["requestBody"].is_object() {
            expected.extend(["400", "413", "422"]);
        }
        for status in expected {
            assert!(responses.contains_key(status), "{method} {path} does not document {status}");
        }
        for (status, r) in responses {
            assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()), "{method} {path} {status}: {r}");
        }
        // A parameter not in the path template is a query parameter (a
        // struct of them documents as `in: path` unless told otherwise).
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default();
            let place = if path.contains(&format!("{{{name}}}")) { "path" } else { "query" };
            assert_eq!(p["in"], place, "{method} {path}: {p}");
        }
        if op["tags"][0] == "public" {
            let refused = responses["403"]["description"].as_str().unwrap_or_default();
            assert!(refused.contains("https_required"), "{method} {path}: {refused}");
        }
    }
    let documented: usize =
        doc["paths"].as_object().expect("paths").values().map(|p| p.as_object().map_or(0, |o| o.len())).sum();
    assert_eq!(documented, ROUTES.len(), "routes in the document but not in this test's list");
}

/// Statuses, reasons, roles and queues are closed sets in the OpenAPI
/// document, each listed with every value the API can answer, so that a
/// client generated from it can match on them.
#[tokio::test]
async fn openapi_document_lists_every_closed_set() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, doc) = app.api("GET", "/api/v1/openapi.json", Some(&app.admin), None).await;
    let schemas = &doc["components"]["schemas"];
    // The values a field may take: the enum its schema refers to, through `oneOf` for optional ones.
    fn values(field: &Value, schemas: &Value) -> Option<Vec<String>> {
        if let Some(r) = field["$ref"].as_str() {
            return values(&schemas[r.trim_start_matches("#/components/schemas/")], schemas);
        }
        if let Some(e) = field["enum"].as_array() {
            return Some(e.iter().filter_map(|v| v.as_str().map(String::from)).collect());
        }
        field["oneOf"].as_array()?.iter().find_map(|f| values(f, schemas))
    }
    let cases: &[(&str, &str, &[&str])] = &[
        ("CertificateView", "status", &["valid", "on_hold", "revoked", "superseded"]),
        ("RevocationView", "status", &["valid", "on_hold", "revoked", "superseded"]),
        ("DeviceView", "status", &["active", "lost", "retired"]),
        ("LostView", "status", &["active", "lost", "retired"]),
        ("UserView", "status", &["invited", "active", "retired", "deleted"]),
        ("UserView", "role", &["admin_division", "welfare_division", "facility_manager", "staff", "device_management"]),
        ("FacilityView", "status", &["approved", "suspended", "closed"]),
        ("ApplicationView", "status", &["pending", "approved", "rejected"]),
        ("ApplicationDecision", "status", &["pending", "approved", "rejected"]),
        ("EscalationView", "status", &["open", "claimed", "resolved"]),
        ("EscalationView", "queue", &["manager", "admin_division"]),
        ("NotificationView", "channel", &["webhook", "email"]),
    ];
    for (schema, field, want) in cases {
        let got = values(&schemas[schema]["properties"][field], schemas);
        assert_eq!(
            got.as_deref(),
            Some(&want.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]),
            "{schema}.{field}"
        );
    }
    let reasons = values(&schemas["CertificateView"]["properties"]["reason"], schemas).expect("reason is a closed set");
    assert!(reasons.contains(&"keyCompromise".to_string()) && reasons.len() == 10, "{reasons:?}");
    let actions =
        values(&schemas["AuditView"]["properties"]["action"], schemas).expect("audit actions are a closed set");
    let every: Vec<String> = connect_pki_domain::AuditAction::ALL.iter().map(|a| a.to_string()).collect();
    assert!(actions == every && actions.contains(&"certificate.revoke".to_string()), "{actions:?}");
}
