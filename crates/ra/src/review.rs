//! Account review (棚卸し): the devices nobody has used for
//! `review_unused_after`, for a facility's manager (their own) and for
//! 行政管理課 (every facility), the confirmation each period that the list
//! was looked at (recorded in the audit log), and the e-mail that reminds
//! the managers when a period passes without one.

use connect_pki_domain::user::review_due;
use connect_pki_domain::{Action, FacilityId, NotifyChannel, authorize};
use connect_pki_store::{Target, UnusedDevice};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;

/// A facility's review: what is unused, when it was last confirmed, and
/// whether a confirmation is due.
#[derive(Debug)]
pub struct Review {
    pub unused: Vec<UnusedDevice>,
    pub last: Option<OffsetDateTime>,
    pub due: bool,
}

pub async fn of_facility(ra: &Ra, caller: &Requester, facility: FacilityId) -> Result<Review, ServiceError> {
    authorize(&caller.actor, Action::ManageUsers(facility))?;
    let now = ra.clock.now();
    let unused = ra.store.unused_devices(Some(facility), now - ra.settings.review_unused_after).await?;
    let last = ra.store.last_review(facility).await?;
    let since = ra.store.review_since(facility).await?;
    Ok(Review { unused, last, due: review_due(since, now, ra.settings.review_period) })
}

/// Every facility's unused devices (行政管理課).
pub async fn everywhere(ra: &Ra, caller: &Requester) -> Result<Vec<UnusedDevice>, ServiceError> {
    authorize(&caller.actor, Action::ListAllCertificates)?;
    Ok(ra.store.unused_devices(None, ra.clock.now() - ra.settings.review_unused_after).await?)
}

/// Records that the caller reviewed `facility`'s accounts now.
pub async fn confirm(ra: &Ra, caller: &Requester, facility: FacilityId) -> Result<(), ServiceError> {
    let review = of_facility(ra, caller, facility).await?;
    let now = ra.clock.now();
    Ok(ra.store.record_review(facility, review.unused.len(), &caller.audit_name, caller.actor.user, now).await?)
}

/// Reminds the managers of every facility in use whose review is due, by
/// e-mail (when mail is configured), once a period. Run by a worker;
/// returns how many facilities were reminded.
pub async fn remind_due(ra: &Ra) -> Result<usize, ServiceError> {
    if ra.settings.notify.smtp_url.is_none() {
        return Ok(0);
    }
    let now = ra.clock.now();
    let period = ra.settings.review_period;
    let bases: std::collections::HashMap<FacilityId, OffsetDateTime> =
        ra.store.reminder_bases().await?.into_iter().collect();
    let mut reminded = 0;
    for f in ra.store.facilities().await? {
        if f.status != connect_pki_domain::FacilityStatus::Approved
            || !review_due(bases.get(&f.id).copied(), now, period)
        {
            continue;
        }
        let targets: Vec<Target> = ra
            .store
            .manager_emails(f.id)
            .await?
            .into_iter()
            .map(|e| Target { channel: NotifyChannel::Email, target: e })
            .collect();
        if targets.is_empty() {
            continue;
        }
        let unused = ra.store.unused_devices(Some(f.id), now - ra.settings.review_unused_after).await?.len();
        let payload = json!({
            "facility_id": f.id, "facility_name": f.name, "unused": unused,
            "unused_days": ra.settings.review_unused_after.whole_days(),
            "console_url": ra.settings.notify.console_link("/console/review"),
            "first_contact": ra.settings.first_contact(&f),
        })
        .to_string();
        if ra.store.remind_review(f.id, &targets, &payload, period, now).await? {
            reminded += 1;
        }
    }
    Ok(reminded)
}

/// The subject and text of a review reminder, from its stored payload.
pub(crate) fn mail(v: &Value) -> (String, String) {
    let link = v["console_url"].as_str().map(|u| format!("\n確認するページ: {u}\n")).unwrap_or_default();
    let subject = format!("【お知らせ】アカウントの棚卸しの時期です（{}）", v["facility_name"].as_str().unwrap_or(""));
    let text = format!(
        "{} の施設管理者の皆さまへ\n\n3か月に一度のアカウントの棚卸しの時期です。{} 日以上使われていない端末が {} 台あります。\n\
         退職した方・使わなくなった端末がないか確認し、退職の手続きや端末の停止をしたうえで、ページの「この一覧を確認しました」を押してください。\n{link}{}",
        v["facility_name"].as_str().unwrap_or(""),
        v["unused_days"],
        v["unused"],
        crate::expiry::first_contact_line(v),
    );
    (subject, text)
}
