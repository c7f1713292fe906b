//! A city-role user placed in a facility answers to 行政管理課 alone: the
//! facility's manager may not issue them a code (and so enroll as them),
//! retire or delete them, or revoke, hold, report or resolve anything of
//! their devices.

use connect_pki_e2e::builders::Enrolled;
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Backend, both_backends};
use serde_json::{Value, json};

use crate::world::{World, world};

/// An `admin_division` user that 行政管理課 placed in facility A, enrolled.
async fn city_user_in_a(w: &World) -> Enrolled {
    let app = &w.app;
    let user = app.register(&app.admin, w.facility_a, "gyosei.a", "admin_division").await;
    let code = app.code_for(&app.admin, user).await;
    let id = app.enroll_generated(&code, Some(PASSWORD), "gyosei-a").await;
    app.enrolled(id, user).await
}

/// The user as 行政管理課 sees them in the facility's list.
async fn admin_view(w: &World, user: i64) -> Value {
    let path = format!("/api/v1/facilities/{}/users", w.facility_a);
    let (status, list) = w.app.api("GET", &path, Some(&w.app.admin), None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array().and_then(|l| l.iter().find(|u| u["id"] == user)).cloned().expect("the user is listed")
}

async fn managers_never_act_on_city_role_users(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let city = city_user_in_a(&w).await;
    let before = admin_view(&w, city.user_id).await;
    let manager = Some(&w.manager_a.id);
    let cert = format!("/api/v1/certificates/{}", city.serial);
    let user = format!("/api/v1/users/{}", city.user_id);
    let attempts: [(&str, String, Option<Value>); 7] = [
        ("POST", format!("{user}/enrollment-codes"), None),
        ("POST", format!("{user}/retire"), Some(json!({}))),
        ("DELETE", user.clone(), None),
        ("POST", format!("{cert}/revoke"), Some(json!({"reason": "keyCompromise"}))),
        ("POST", format!("{cert}/hold"), None),
        ("POST", format!("/api/v1/devices/{}/lost", city.device_id), None),
        ("POST", "/api/v1/escalations".into(), Some(json!({"device_id": city.device_id}))),
    ];
    for (method, path, body) in &attempts {
        let (status, out) = app.api(method, path, manager, body.as_ref()).await;
        assert_eq!((status, out["error"]["code"].as_str()), (403, Some("forbidden")), "{method} {path}: {out}");
    }
    // Nor may they grant a city role in their own facility.
    let body =
        json!({"display_name": "x", "login_id": "fukushi.a", "email": "f@example.test", "role": "welfare_division"});
    let path = format!("/api/v1/facilities/{}/users", w.facility_a);
    assert_eq!(app.api("POST", &path, manager, Some(&body)).await.0, 403);

    assert_eq!(admin_view(&w, city.user_id).await, before, "a refused call changed something");
    assert_eq!(before["status"], "active");
    assert_eq!(before["devices"][0]["certificates"][0]["status"], "valid");
    assert!(app.handshake_ok(&city.id).await);
    assert_eq!(app.ocsp_status(&city.id).await, "good");

    // The same manager still manages staff of the facility.
    let code = format!("/api/v1/users/{}/enrollment-codes", w.staff_a.user_id);
    assert_eq!(app.api("POST", &code, manager, None).await.0, 201);
}
both_backends!(managers_never_act_on_city_role_users);

/// A report about a city-role user's device goes to 行政管理課 at any hour,
/// and the facility's manager cannot claim it.
async fn reports_about_city_role_devices_go_to_the_admin_division(backend: Backend) {
    let w = world(backend).await;
    let app = &w.app;
    let city = city_user_in_a(&w).await;
    let body = json!({"device_id": city.device_id, "note": "電話で受付"});
    let (status, e) = app.api("POST", "/api/v1/escalations", Some(&app.admin), Some(&body)).await;
    assert_eq!((status, e["queue"].as_str()), (201, Some("admin_division")), "{e}");
    let claim = format!("/api/v1/escalations/{}/claim", e["id"]);
    let (status, out) = app.api("POST", &claim, Some(&w.manager_a.id), Some(&json!({}))).await;
    assert_eq!(status, 403, "{out}");
    assert_eq!(app.api("POST", &claim, Some(&app.admin), Some(&json!({}))).await.0, 200);
}
both_backends!(reports_about_city_role_devices_go_to_the_admin_division);
