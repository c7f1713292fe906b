//! Certificates that run out soon: the lists (a manager's facility, every
//! facility for 行政管理課), the CA certificates' remaining life, the
//! figures for /metrics, and the notices — an e-mail to the facility's
//! managers once at the configured window and once at 7 days, and the same
//! for the CA certificates to 行政管理課.
//!
//! A tick finds the notices due from a lock-free read and hands each to
//! `Store::record_expiry_notice`, which decides again under the writer lock
//! and records it with its e-mails in one transaction; of several ticks or
//! instances finding the same notice due, one sends it. The outbox worker
//! delivers the e-mails like any other notification.

use std::collections::HashMap;

use connect_pki_domain::expiry::{self, days_left};
use connect_pki_domain::policy::{Scope, certificate_scope};
use connect_pki_domain::{Action, CertStatus, FacilityId, NotifyChannel, Serial, authorize};
use connect_pki_store::{ExpiringCertificate, ExpiryNotice, NoticeSubject, Target};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;

/// The certificates the caller may see that run out within `within`:
/// every facility's for 行政管理課, their own facility's for a manager.
pub async fn list(
    ra: &Ra,
    caller: &Requester,
    within: time::Duration,
) -> Result<Vec<ExpiringCertificate>, ServiceError> {
    let facility = match certificate_scope(&caller.actor)? {
        Scope::All => None,
        Scope::Facility(f) => Some(f),
    };
    let now = ra.clock.now();
    Ok(ra.store.expiring_certificates(facility, now, now + within).await?)
}

/// The configured window (`--expiry-notice-days`) as a duration.
pub fn default_window(ra: &Ra) -> time::Duration {
    time::Duration::days(i64::from(ra.settings.expiry_notice_days))
}

/// One of the CA certificates this service chains to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificate {
    pub subject: NoticeSubject,
    /// `root`, or the issuing CA's name (`issuing`, `issuing-2` after a rollover).
    pub ca: String,
    pub serial: Serial,
    /// The subject's distinguished name, as openssl prints it.
    pub name: String,
    pub not_after: OffsetDateTime,
}

impl CaCertificate {
    /// `root`, `issuing`, `issuing-2`…, as /metrics labels it.
    pub fn label(&self) -> String {
        self.ca.clone()
    }
}

/// The root and every issuing CA certificate, as served on `/ca/*`.
pub(crate) fn ca_certificates(ra: &Ra) -> Result<Vec<CaCertificate>, ServiceError> {
    let issuing = ra.certs.issuing.iter().map(|(name, der, _)| (NoticeSubject::Issuing, name.clone(), der));
    [(NoticeSubject::Root, "root".to_string(), &ra.certs.root_der)]
        .into_iter()
        .chain(issuing)
        .map(|(subject, ca, der)| {
            let (_, cert) = x509_parser::parse_x509_certificate(der)
                .map_err(|e| anyhow::anyhow!("the {} CA certificate does not parse: {e}", subject.as_str()))?;
            let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
                .map_err(|e| anyhow::anyhow!("the {} CA certificate's notAfter: {e}", subject.as_str()))?;
            Ok(CaCertificate {
                subject,
                ca,
                serial: Serial::from_bytes(cert.tbs_certificate.raw_serial())?,
                name: cert.subject().to_string(),
                not_after,
            })
        })
        .collect()
}

/// The CA certificates for the city's page (行政管理課).
pub async fn ca_status(ra: &Ra, caller: &Requester) -> Result<Vec<CaCertificate>, ServiceError> {
    authorize(&caller.actor, Action::ListAllCertificates)?;
    ca_certificates(ra)
}

/// What /metrics shows: device certificates in force running out within
/// each notice threshold, and each CA certificate's end.
pub struct Figures {
    /// (threshold in days, certificates in force running out within it)
    pub expiring: Vec<(u32, i64)>,
    pub ca: Vec<CaCertificate>,
}

pub async fn figures(ra: &Ra) -> Result<Figures, ServiceError> {
    let now = ra.clock.now();
    let thresholds = expiry::thresholds(ra.settings.expiry_notice_days);
    let untils: Vec<OffsetDateTime> = thresholds.iter().map(|t| now + days(*t)).collect();
    let counts = ra.store.count_expiring(now, &untils).await?;
    Ok(Figures { expiring: thresholds.into_iter().zip(counts).collect(), ca: ca_certificates(ra)? })
}

fn days(n: u32) -> time::Duration {
    time::Duration::days(i64::from(n))
}

/// Looks for due notices every `every` until shutdown (`None`: never).
pub async fn worker(ra: Ra, every: Option<std::time::Duration>, shutdown: CancellationToken) {
    let Some(every) = every else { return };
    loop {
        match tick(&ra).await {
            Ok(0) => {}
            Ok(sent) => tracing::info!(notices = sent, "expiry notices queued"),
            Err(e) => tracing::error!(error = %e.to_string(), "expiry notices could not be queued; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {},
        }
    }
}

/// Queues every notice due now; returns how many this call queued. Without
/// an SMTP server there is nobody to tell, and nothing is recorded: the
/// notices due go out once one is configured.
pub async fn tick(ra: &Ra) -> Result<usize, ServiceError> {
    if ra.settings.notify.smtp_url.is_none() {
        return Ok(0);
    }
    let now = crate::due_now(ra).await?;
    let thresholds = expiry::thresholds(ra.settings.expiry_notice_days);
    let widest = thresholds.first().copied().unwrap_or(expiry::DEFAULT_WINDOW_DAYS);
    let mut sent = 0;
    let mut managers: HashMap<FacilityId, Vec<Target>> = HashMap::new();
    for e in ra.store.expiring_certificates(None, now, now + days(widest)).await? {
        let c = &e.certificate;
        let Some(threshold) = expiry::due_notice(c.status, c.not_after, now, &thresholds, &e.notices) else {
            continue;
        };
        let targets = match managers.get(&e.facility.id) {
            Some(t) => t.clone(),
            None => {
                let t = emails(ra.store.manager_emails(e.facility.id).await?);
                managers.insert(e.facility.id, t.clone());
                t
            }
        };
        let payload = device_payload(ra, &e, threshold, now)?;
        let notice = ExpiryNotice {
            serial: &c.serial,
            subject: NoticeSubject::Device,
            not_after: c.not_after,
            threshold,
            thresholds: &thresholds,
            targets: &targets,
            payload: &payload,
        };
        if ra.store.record_expiry_notice(&notice, now).await? {
            sent += 1;
        }
    }
    let mut city: Option<Vec<Target>> = None;
    for ca in ca_certificates(ra)? {
        let already = ra.store.expiry_notices(&ca.serial).await?;
        let Some(threshold) = expiry::due_notice(CertStatus::Valid, ca.not_after, now, &thresholds, &already) else {
            continue;
        };
        if city.is_none() {
            city = Some(city_targets(ra).await?);
        }
        let targets = city.clone().unwrap_or_default();
        let payload = ca_payload(ra, &ca, threshold, now)?;
        let notice = ExpiryNotice {
            serial: &ca.serial,
            subject: ca.subject,
            not_after: ca.not_after,
            threshold,
            thresholds: &thresholds,
            targets: &targets,
            payload: &payload,
        };
        if ra.store.record_expiry_notice(&notice, now).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

fn emails(addresses: Vec<String>) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for a in addresses {
        if !out.iter().any(|t| t.target == a) {
            out.push(Target { channel: NotifyChannel::Email, target: a });
        }
    }
    out
}

/// 行政管理課: its active users and the on-call addresses.
async fn city_targets(ra: &Ra) -> Result<Vec<Target>, ServiceError> {
    let mut all = ra.store.admin_division_emails().await?;
    all.extend(ra.settings.notify.on_call.iter().map(ToString::to_string));
    Ok(emails(all))
}

/// An instant as the notices print it: Asia/Tokyo, to the minute.
fn tokyo_text(t: OffsetDateTime) -> Result<String, ServiceError> {
    let (d, tm) = connect_pki_domain::calendar::tokyo(t)?;
    Ok(format!("{d} {:02}:{:02}", tm.hour(), tm.minute()))
}

fn device_payload(
    ra: &Ra,
    e: &ExpiringCertificate,
    threshold: u32,
    now: OffsetDateTime,
) -> Result<String, ServiceError> {
    let c = &e.certificate;
    Ok(json!({
        "certificate": "device", "threshold_days": threshold, "days_left": days_left(c.not_after, now),
        "facility_id": e.facility.id, "facility_name": e.facility.name,
        "user_id": e.user.id, "display_name": e.user.display_name, "login_id": e.user.login_id,
        "device_id": e.device, "device_label": e.device_label,
        "serial": c.serial.to_hex(), "not_after": c.not_after.unix_timestamp(),
        "not_after_tokyo": tokyo_text(c.not_after)?,
        "console_url": ra.settings.notify.console_link("/console/expiring"),
        "renew_url": ra.settings.notify.console_link("/console/me"),
        "first_contact": ra.settings.first_contact(&e.facility),
    })
    .to_string())
}

fn ca_payload(ra: &Ra, ca: &CaCertificate, threshold: u32, now: OffsetDateTime) -> Result<String, ServiceError> {
    Ok(json!({
        "certificate": ca.label(), "threshold_days": threshold, "days_left": days_left(ca.not_after, now),
        "subject": ca.name, "serial": ca.serial.to_hex(), "not_after": ca.not_after.unix_timestamp(),
        "not_after_tokyo": tokyo_text(ca.not_after)?,
        "console_url": ra.settings.notify.console_link("/console/certificates/expiring"),
    })
    .to_string())
}

/// 「お問い合わせは担当課の…へ」 for an outside facility's e-mail.
pub(crate) fn first_contact_line(v: &Value) -> String {
    v["first_contact"].as_str().map_or_else(String::new, |d| {
        format!("\nお問い合わせは、まず担当課の{d}へ。利用の対象かどうかは、担当課を通じて福祉課へ。\n")
    })
}

/// The subject and text of an expiry notice, from its stored payload.
pub(crate) fn mail(v: &Value) -> (String, String) {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let threshold = v["threshold_days"].as_u64().unwrap_or(0);
    let urgent = threshold <= u64::from(expiry::FINAL_NOTICE_DAYS);
    let mark = if urgent { "【重要】" } else { "【お知らせ】" };
    let link = v["console_url"].as_str().map(|u| format!("\n一覧: {u}\n")).unwrap_or_default();
    let renew = v["renew_url"].as_str().map(|u| format!("（{u}）")).unwrap_or_default();
    let ask = first_contact_line(v);
    match v["certificate"].as_str() {
        Some("device") => {
            let holder = match (v["display_name"].as_str(), v["login_id"].as_str()) {
                (Some(n), Some(l)) => format!("{n}（{l}）"),
                (Some(n), None) => n.to_string(),
                _ => format!("職員 {}", v["user_id"]),
            };
            let device = match v["device_label"].as_str().filter(|l| !l.is_empty()) {
                Some(l) => format!("端末 {}「{l}」", v["device_id"]),
                None => format!("端末 {}", v["device_id"]),
            };
            let subject = format!("{mark}端末の証明書の有効期限が近づいています（{holder}・残り{threshold}日以内）");
            let text = format!(
                "次の端末の証明書は、{threshold}日以内に有効期限を迎えます。\n\n施設: {}\n職員: {holder}\n端末: {device}\nシリアル: {}\n有効期限: {}（日本時間）\n\n\
                 職員本人がその端末で「わたしの端末」{renew}を開き「証明書を更新する」を押すと、その場で更新できます。\
                 自動で更新する端末は、期限の前に自ら更新します。更新されないまま期限を迎えると、この端末は CONNECT を使えなくなり、\
                 新しい登録コードで登録し直すことになります。\n{link}{ask}",
                s("facility_name"),
                s("serial"),
                s("not_after_tokyo"),
            );
            (subject, text)
        }
        other => {
            let which = if other == Some("root") { "ルートCA" } else { "発行CA" };
            let subject = format!("{mark}{which}の証明書の有効期限が近づいています（残り{threshold}日以内）");
            let text = format!(
                "connect-pki の{which}の証明書は、{threshold}日以内に有効期限を迎えます。\n\n証明書: {}\nシリアル: {}\n有効期限: {}（日本時間）\n\n\
                 期限を過ぎると、この CA が発行したすべての証明書が検証できなくなります。CA 証明書の更新と、利用機関への配布を進めてください。\n{link}",
                s("subject"),
                s("serial"),
                s("not_after_tokyo"),
            );
            (subject, text)
        }
    }
}
