//! The 担当課 route (issue 25, item 7): with the city's departments
//! configured, an application chooses its 担当課 from the list (anything
//! else is refused at the field); every console page an outside facility's
//! people see names that department and its contact first, 福祉課 for
//! eligibility and 行政管理課 only for emergencies; 施設一覧 and the
//! facility page show the 担当課 with its contact.

use connect_pki_domain::city_desk::Department;
use connect_pki_e2e::fixtures::application;
use connect_pki_e2e::{AppOptions, Backend, both_backends, spawn_app_with};
use serde_json::json;

use crate::console_manager::page_with;

async fn an_outside_facility_is_sent_to_its_department_first(backend: Backend) {
    let departments = vec![
        Department { name: "高齢者支援課".into(), contact: "内線 1234".into() },
        Department { name: "障がい者支援課".into(), contact: "内線 5678".into() },
    ];
    let app = spawn_app_with(backend, AppOptions::with(move |c| c.ra.departments = departments)).await;
    let form = app.open(connect_pki_e2e::client::Req::new("GET", "/apply")).await.text();
    assert!(form.contains("<select id=\"department\"") && form.contains(">障がい者支援課</option>"), "{form}");
    let mut body = application("よそのデイサービス", "yoso.kanri");
    body["department"] = json!("存在しない課");
    let (status, out) = app.public_api("POST", "/api/v1/applications", Some(&body)).await;
    assert_eq!((status, out["error"]["code"].as_str()), (422, Some("invalid")), "{out}");
    assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains("department")), "{out}");

    body["department"] = json!("高齢者支援課");
    let f = app.approve(&app.admin, &body).await;
    let manager = app.manager(&f, "yoso").await;
    let page = page_with(&app, &manager.id, "/console/staff", "id=\"contact\"").await;
    assert!(
        page.contains("担当課の高齢者支援課（内線 1234）へ")
            && page.contains("福祉課")
            && page.contains("緊急のときだけ"),
        "{page}"
    );
    let me = page_with(&app, &manager.id, "/console/me", "id=\"contact\"").await;
    assert!(me.contains("高齢者支援課"), "every page names it: {me}");
    // The city's own staff are not sent to a department.
    let own = page_with(&app, &app.admin, "/console/me", "わたしの端末").await;
    assert!(!own.contains("id=\"contact\""), "{own}");
    let list = page_with(&app, &app.admin, "/console/facilities", "担当課").await;
    assert!(list.contains("高齢者支援課（内線 1234）"), "{list}");
    let one = page_with(&app, &app.admin, &format!("/console/facilities/{}", f.id), "担当課").await;
    assert!(one.contains("高齢者支援課（内線 1234）"), "{one}");
}
both_backends!(an_outside_facility_is_sent_to_its_department_first);

/// The e-mails to an outside facility's managers name its 担当課 too.
async fn an_outside_facility_s_mail_names_its_department(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sinks = connect_pki_e2e::Sinks::start_logging_to(dir.path().join("sinks.jsonl"), "unused");
    let notify = connect_pki_ra::notify::NotifyConfig {
        smtp_url: Some(sinks.smtp_url().parse().expect("an SMTP URL")),
        mail_from: "connect-pki@city.example".parse().expect("an address"),
        ..connect_pki_ra::notify::NotifyConfig::default()
    };
    let departments = vec![Department { name: "高齢者支援課".into(), contact: "内線 1234".into() }];
    let app = spawn_app_with(
        backend,
        AppOptions::with(move |c| {
            c.ra.departments = departments;
            c.ra.notify = notify;
        }),
    )
    .await;
    let mut body = application("よそのデイサービス", "yoso2.kanri");
    body["department"] = json!("高齢者支援課");
    let f = app.approve(&app.admin, &body).await;
    app.manager(&f, "yoso2").await;
    app.clock.advance(time::Duration::days(92));
    connect_pki_ra::review::remind_due(app.state()).await.expect("remind");
    let mut mails = Vec::new();
    for _ in 0..100 {
        mails = sinks.entries().into_iter().filter(|e| e["kind"] == "email").collect();
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(mails.iter().any(|m| m.to_string().contains("担当課の高齢者支援課（内線 1234）")), "{mails:?}");
}
both_backends!(an_outside_facility_s_mail_names_its_department);
