//! A departure at 年度末 (issue 25, item 4), on a stepped clock: the manager
//! retires a member of staff with 退職日 the last day of the fiscal year; the
//! device works until the end of that day in Japan time and is refused by
//! `openssl ocsp` and at our handshake just after midnight; 退職済み・未削除
//! reminds the manager, who deletes the account (アカウント削除), and the
//! login ID is registered again at another facility (異動). The facility's
//! only manager cannot retire themselves.

use std::time::{Duration, Instant};

use connect_pki_e2e::{Backend, FakeTime, Server};
use serde_json::json;
use time::macros::{offset, time};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime};

use super::{facility, registered, says, walk};
use crate::revocation::{handshake_ok, ocsp_status};
use connect_pki_e2e::fixtures::PASSWORD;

/// The last working day to retire on: the next 31 March (年度末) whose
/// last minute is still ahead. In the first days of April that is nearly a
/// year away, further than a certificate issued today may live in a leap
/// year: the end of this month stands in (the rule tested is the same).
fn end_of_fiscal_year() -> Date {
    let now = OffsetDateTime::now_utc().to_offset(offset!(+9)) + time::Duration::minutes(10);
    let today = now.date();
    let this_year = Date::from_calendar_date(today.year(), Month::March, 31).expect("date");
    let next = if today <= this_year { this_year } else { this_year.replace_year(today.year() + 1).expect("date") };
    if next - today <= time::Duration::days(330) {
        return next;
    }
    let mut last = today;
    while (last + time::Duration::days(1)).month() == today.month() {
        last += time::Duration::days(1);
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departure_at_the_end_of_the_fiscal_year() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let (a, manager_id, manager) = facility(&s, &admin, "さくら訪問看護ステーション", "sakura.kanri");
    let (b, _, other) = facility(&s, &admin, "もみじ居宅介護支援事業所", "momiji.kanri");
    let (staff_id, code) = registered(&s, &manager, a, "ido.suru", "staff");
    let staff = s.enroll_generated(&code, Some(PASSWORD), "ido-suru-pc");

    let last_day = end_of_fiscal_year();
    let on = format!("{:04}-{:02}-{:02}", last_day.year(), u8::from(last_day.month()), last_day.day());
    let out = walk(&s, Some(&manager), "retire_on_date", json!({"staff": staff_id, "manager": manager_id, "on": on}));
    says(&out, "offered", "アカウント削除");
    says(&out, "retiring", "退職を予定しました");
    says(&out, "person", "退職予定");
    says(&out, "self", "ただ一人の施設管理者");
    assert_eq!(ocsp_status(&s, &staff), "good", "retired before the day");

    // The last day, a minute before midnight in Japan: still at work.
    let at = |t| PrimitiveDateTime::new(last_day, t).assume_offset(offset!(+9));
    s.stop();
    s.spawn_at(FakeTime::at(at(time!(23:59:00))), &[]);
    assert_eq!(ocsp_status(&s, &staff), "good", "stopped before the end of the last working day");
    assert!(handshake_ok(&s, &staff));
    // Just after midnight: stopped.
    s.stop();
    s.spawn_at(FakeTime::at(at(time!(23:59:00)) + time::Duration::seconds(75)), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = ocsp_status(&s, &staff);
    while status == "good" {
        assert!(Instant::now() < deadline, "still good after the last working day");
        std::thread::sleep(Duration::from_millis(300));
        status = ocsp_status(&s, &staff);
    }
    assert!(status.starts_with("revoked"), "{status}");
    assert!(!handshake_ok(&s, &staff), "a retired person's device still gets in");

    let out = walk(&s, Some(&manager), "delete_after", json!({"staff": staff_id}));
    says(&out, "undeleted", "ido.suru");
    says(&out, "confirm", "削除");
    says(&out, "deleted", "個人情報を削除しました");
    let out = walk(&s, Some(&other), "register_again", json!({"login": "ido.suru"}));
    says(&out, "registered", "ido.suru");
    let (_, found) = s.api("GET", "/api/v1/people?q=ido.suru", Some(&admin), None);
    let moved = found.as_array().expect("people").iter().any(|p| p["login_id"] == "ido.suru" && p["facility_id"] == b);
    assert!(moved, "the login ID is not registered at the other facility: {found}");
}
