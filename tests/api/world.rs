//! Everyone the lifecycle and authorization tests act as, enrolled through
//! the API: the path of issue 3 from application to a staff device.

use connect_pki_e2e::builders::Enrolled;
use connect_pki_e2e::client::Identity;
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Backend, TestApp, spawn_app};

pub struct World {
    pub app: TestApp,
    pub welfare: Identity,
    pub manager_a: Enrolled,
    pub staff_a: Enrolled,
    pub manager_b: Enrolled,
    pub facility_a: i64,
    pub facility_b: i64,
}

/// Application → approval by welfare_division → manager enrolls (PKCS#12) →
/// manager registers staff → staff enrolls with a CSR; and a second facility
/// approved by 行政管理課.
pub async fn world(backend: Backend) -> World {
    let app = spawn_app(backend).await;
    let welfare_id = app.register(&app.admin, 1, "fukushi", "welfare_division").await;
    let code = app.code_for(&app.admin, welfare_id).await;
    let welfare = app.enroll_generated(&code, Some(PASSWORD), "welfare").await;
    assert_eq!(app.whoami(&welfare).await["role"], "welfare_division");

    let a = app.facility(&welfare, "デイケア南", "minami.kanri").await;
    let manager_a = app.manager(&a, "manager-a").await;
    let me = app.whoami(&manager_a.id).await;
    assert_eq!((me["role"].as_str(), me["facility_id"].as_i64()), (Some("facility_manager"), Some(a.id)));
    let staff_a = app.staff(&manager_a.id, a.id, "hanako").await;
    let me = app.whoami(&staff_a.id).await;
    assert_eq!((me["role"].as_str(), me["facility_id"].as_i64()), (Some("staff"), Some(a.id)));

    let b = app.facility(&app.admin, "地域包括支援センター北", "kita.kanri").await;
    let manager_b = app.manager(&b, "manager-b").await;
    World { app, welfare, manager_a, staff_a, manager_b, facility_a: a.id, facility_b: b.id }
}
