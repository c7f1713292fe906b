//! Fixtures shared by both suites: the password every test user gets, an
//! application body, and (for the end-to-end suite) a device enrolled
//! through the real binary with an `openssl req` CSR.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::Server;

/// The password given to every enrolled test user.
pub const PASSWORD: &str = "correct horse battery";

/// A facility application with a manager whose login ID is `login`.
pub fn application(name: &str, login: &str) -> Value {
    json!({
        "name": name, "kind": "external", "address": "千歳市東雲町2丁目34番地", "department": "福祉課",
        "manager": {"name": "施設 管理者", "login_id": login, "email": format!("{login}@example.test"), "phone": "0123-24-3131"},
        "purpose_attested": true, "terms_version": "2026-04-01"
    })
}

/// The next Saturday, 22:00 in Asia/Tokyo (13:00 UTC). Always ahead of the
/// real clock: on PostgreSQL the hold limit is decided by the database's
/// (real) clock, and a fixed date would one day lie 72 h behind it.
pub fn next_saturday_night() -> time::OffsetDateTime {
    let today = time::OffsetDateTime::now_utc().date();
    let ahead = match (5 + 7 - i64::from(today.weekday().number_days_from_monday())) % 7 {
        0 => 7,
        n => n,
    };
    (today + time::Duration::days(ahead)).midnight().assume_utc() + time::Duration::hours(13)
}

/// 10:00 in Asia/Tokyo (01:00 UTC) on the next business day after today:
/// ahead of the real clock, so the certificates made before a test sets its
/// clock there are already valid then (the handshake checks validity against
/// the real clock).
pub fn next_business_morning() -> time::OffsetDateTime {
    let hours = connect_pki_domain::calendar::BusinessHours::default();
    let ten = time::macros::time!(10:00);
    let mut day = time::OffsetDateTime::now_utc().date() + time::Duration::days(1);
    while !hours.is_open(day, ten) {
        day += time::Duration::days(1);
    }
    day.midnight().assume_utc() + time::Duration::hours(1)
}

/// A device enrolled on a [`Server`]: its certificate and key in one PEM file.
pub struct Device {
    pub pem: PathBuf,
    pub serial: String,
    pub device_id: i64,
    pub user_id: i64,
}

/// A staff member of the city facility with one enrolled device (openssl CSR).
pub fn device(s: &Server, admin: &Path, login: &str) -> Device {
    let body = json!({"display_name": login, "login_id": login, "email": format!("{login}@example.test")});
    let (status, user) = s.api("POST", "/api/v1/facilities/1/users", Some(admin), Some(&body));
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_i64().expect("id");
    another_device(s, admin, user_id, login, &format!("{login}-1"))
}

/// One more device for `user_id`, enrolled with a code made by `admin`.
pub fn another_device(s: &Server, admin: &Path, user_id: i64, login: &str, name: &str) -> Device {
    let (status, code) = s.api("POST", &format!("/api/v1/users/{user_id}/enrollment-codes"), Some(admin), None);
    assert_eq!(status, 201, "{code}");
    let pem = s.enroll_csr(code["code"].as_str().expect("code"), Some(PASSWORD), name, &format!("/CN={login}"));
    let (status, me) = s.api("GET", "/api/v1/whoami", Some(&pem), None);
    assert_eq!(status, 200, "{me}");
    Device {
        pem,
        serial: me["serial"].as_str().expect("serial").to_string(),
        device_id: me["device_id"].as_i64().expect("device"),
        user_id,
    }
}
