//! Telling people about emergencies: a JSON webhook signed with HMAC-SHA256
//! and e-mail over SMTP, to the on-call addresses and the facility's
//! managers. Notifications are queued in the escalation's own transaction and
//! delivered by a worker with retries and backoff, so a mail server or
//! webhook that is down never delays the hold or the queue; every attempt is
//! in the delivery log. The same outbox carries the expiry notices
//! (`service::expiry`), e-mail only, which belong to no escalation.

use std::time::Duration;

use aws_lc_rs::hmac;
use connect_pki_domain::{FacilityId, NotifyChannel};
use connect_pki_store::{DeviceRecord, EscalationRecord, NotificationRecord, Target, UserRecord};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use lettre::Address;
use lettre::AsyncTransport;
use lettre::message::Mailbox;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Ra;
use crate::error::ServiceError;

/// Where notifications go (`[notifications]` in config.toml), each value
/// parsed when the settings are read: a wrong address stops the start, not
/// the first emergency's notice.
#[derive(Clone)]
pub struct NotifyConfig {
    pub webhook_url: Option<url::Url>,
    /// Key of the `X-Connect-PKI-Signature` HMAC.
    pub webhook_secret: Option<String>,
    pub smtp_url: Option<SmtpUrl>,
    pub mail_from: Mailbox,
    /// 行政管理課's on-call addresses.
    pub on_call: Vec<Address>,
    /// Base URL of the console, for the link in messages.
    pub console_url: Option<url::Url>,
}

impl Default for NotifyConfig {
    /// Nowhere: no webhook, no mail server.
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: None,
            smtp_url: None,
            mail_from: Mailbox::new(None, Address::new("connect-pki", "localhost").expect("a valid address")),
            on_call: Vec::new(),
            console_url: None,
        }
    }
}

impl NotifyConfig {
    /// `page` of the console, as a link for a message (`None`: no console URL set).
    pub(crate) fn console_link(&self, page: &str) -> Option<String> {
        self.console_url.as_ref().map(|u| format!("{}{page}", u.as_str().trim_end_matches('/')))
    }
}

connect_pki_domain::redacted_debug!(NotifyConfig { mail_from, on_call, console_url; webhook_url, webhook_secret, smtp_url });

/// A mail server's address: `smtp://host:port` (plain, e.g. a local relay),
/// `smtps://…` or `smtp://…?tls=required` — one that lettre can use.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(String);

impl std::str::FromStr for SmtpUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(s).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(Self(s.to_string()))
    }
}

/// The targets of a new report for a facility.
pub(crate) async fn targets(ra: &Ra, facility: FacilityId) -> Result<Vec<Target>, ServiceError> {
    let cfg = &ra.settings.notify;
    let mut out = Vec::new();
    if let Some(url) = &cfg.webhook_url {
        out.push(Target { channel: NotifyChannel::Webhook, target: url.to_string() });
    }
    if cfg.smtp_url.is_some() {
        let mut emails: Vec<String> = cfg.on_call.iter().map(Address::to_string).collect();
        for m in ra.store.manager_emails(facility).await? {
            if !emails.contains(&m) {
                emails.push(m);
            }
        }
        out.extend(emails.into_iter().map(|e| Target { channel: NotifyChannel::Email, target: e }));
    }
    Ok(out)
}

/// What the notification about device `d` of `user` says (without the
/// escalation id, added at delivery).
pub(crate) async fn payload(ra: &Ra, d: &DeviceRecord, user: &UserRecord, queue: &str) -> Result<String, ServiceError> {
    let facility = ra.store.facility(d.facility).await?.map(|f| f.name).unwrap_or_default();
    Ok(json!({
        "facility_id": d.facility, "facility_name": facility,
        "user_id": user.id, "login_id": user.login_id, "display_name": user.display_name,
        "device_id": d.id, "device_label": d.label, "queue": queue,
        "console_url": ra.settings.notify.console_link("/console/"),
    })
    .to_string())
}

/// Moves an escalation past its SLA to 行政管理課 with its "escalated"
/// notifications, in one transaction; `None` when another instance (or an
/// operator's claim) got there first.
pub(crate) async fn escalate(
    ra: &Ra,
    e: &EscalationRecord,
    now: OffsetDateTime,
) -> Result<Option<EscalationRecord>, ServiceError> {
    let d = ra.store.device(e.device).await?.ok_or(ServiceError::NotFound("device"))?;
    let holder = ra.store.user(d.user).await?.ok_or(ServiceError::NotFound("user"))?;
    let mut body: Value = serde_json::from_str(&payload(ra, &d, &holder, "admin_division").await?).unwrap_or_default();
    body["reason"] = "not claimed by the facility manager within the SLA".into();
    let targets = targets(ra, e.facility).await?;
    Ok(ra.store.escalate(e.id, &targets, &body.to_string(), now).await?)
}

/// The longest one delivery may take, the whole exchange: connecting,
/// TLS, every SMTP line or the webhook's request and answer. A peer that
/// accepts and then stalls costs this much, once per notice.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long an instance holds the one notification it is delivering: three
/// times the send timeout, with room to record the outcome, so a lease only
/// runs out when its holder died (and another instance then sends it).
const LEASE: time::Duration = time::Duration::seconds(30);

/// An emergency notice is retried at least this long, however many attempts
/// that takes: the people it is for must hear of the report once the relay or
/// the chat service is back.
pub const EMERGENCY_RETRY: time::Duration = time::Duration::hours(24);

/// Notifications delivered in one pass of the worker, per channel.
const PER_PASS: usize = 20;

/// Delivers what is due; failures are rescheduled with exponential backoff.
/// Each channel is delivered on its own, so a mail server that stalls never
/// holds up the webhook, nor the other way round.
pub async fn deliver_due(ra: &Ra) -> Result<(), ServiceError> {
    let (webhooks, emails) =
        tokio::join!(deliver_channel(ra, NotifyChannel::Webhook), deliver_channel(ra, NotifyChannel::Email));
    webhooks.and(emails)
}

async fn deliver_channel(ra: &Ra, channel: NotifyChannel) -> Result<(), ServiceError> {
    let owner = &*ra.instance_id;
    // One at a time: a lease covers exactly the send in progress, so a slow
    // mail server can never outlast the lease of notifications still waiting
    // in a batch (another instance would then send them a second time), and
    // a SIGKILL interrupts at most one send not yet recorded.
    for _ in 0..PER_PASS {
        let now = crate::due_now(ra).await?;
        let Some(n) = ra.store.lease_notifications(owner, now, LEASE, channel, 1).await?.pop() else { break };
        let send = async {
            match n.channel {
                NotifyChannel::Webhook => send_webhook(ra, &n).await,
                NotifyChannel::Email => send_email(ra, &n).await,
            }
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(SEND_TIMEOUT, holding_lease(ra, n.id, now, send))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s (the whole exchange)", SEND_TIMEOUT.as_secs())));
        // Times on the database's clock, as the lease's (instances whose
        // clocks disagree still agree on when a retry is due), moved on by
        // the send: no round trip between sending and recording it.
        let now = now + started.elapsed();
        match result {
            Ok(()) => {
                tracing::info!(notification = n.id, channel = %n.channel, target = %shown_target(n.channel, &n.target, false), "notification delivered");
                if !ra.store.record_delivery(n.id, owner, None, None, now).await? {
                    tracing::warn!(notification = n.id, "lease lost while delivering; the other holder records it");
                }
            }
            Err(e) => {
                let attempt = n.attempts + 1;
                let emergency = n.escalation.is_some() && now - n.created_at < EMERGENCY_RETRY;
                let retry = (attempt < i64::from(ra.settings.notification_attempts) || emergency)
                    .then(|| now + backoff(attempt, emergency));
                metrics::counter!("connect_pki_notification_failures_total", "channel" => n.channel.as_str())
                    .increment(1);
                match retry {
                    Some(_) => {
                        tracing::warn!(notification = n.id, channel = %n.channel, attempt, error = %e, "notification failed; it is retried")
                    }
                    None => {
                        metrics::counter!("connect_pki_notifications_given_up_total", "channel" => n.channel.as_str())
                            .increment(1);
                        tracing::error!(notification = n.id, channel = %n.channel, attempt, error = %e, "notification given up: nobody was told by this channel")
                    }
                }
                ra.store.record_delivery(n.id, owner, Some(&e), retry, now).await?;
            }
        }
    }
    Ok(())
}

/// Runs `send` while renewing the lease on notification `id` (leased at
/// `leased`, database clock) every half send timeout: a lease that runs out while
/// its holder is still sending (a process paused, a clock that jumped) would
/// let another instance send the same notice a second time.
async fn holding_lease<F>(ra: &Ra, id: i64, leased: OffsetDateTime, send: F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    let every = SEND_TIMEOUT / 2;
    let started = std::time::Instant::now();
    let mut send = std::pin::pin!(send);
    loop {
        tokio::select! {
            result = &mut send => return result,
            () = tokio::time::sleep(every) => {
                let until = leased + started.elapsed() + LEASE;
                match ra.store.renew_notification_lease(id, &ra.instance_id, until).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(notification = id, "the lease ran out while sending; another instance may send it too"),
                    Err(e) => tracing::warn!(notification = id, error = %e, "the lease could not be renewed"),
                }
            }
        }
    }
}

/// A notification's target as a person may see it: a webhook URL is a bearer
/// secret on chat services, so only 行政管理課 (who configured it) sees it,
/// and logs never do; e-mail addresses are shown.
pub(crate) fn shown_target(channel: NotifyChannel, target: &str, to_admin_division: bool) -> String {
    if channel == NotifyChannel::Webhook && !to_admin_division {
        connect_pki_domain::redact::REDACTED.to_string()
    } else {
        target.to_string()
    }
}

/// 1 s, 2 s, 4 s … at most 10 minutes; an emergency notice at most a minute,
/// so that it arrives within a minute of the relay or chat service coming
/// back, however long it was down (a try a minute for a day is little).
fn backoff(attempt: i64, emergency: bool) -> time::Duration {
    let cap = if emergency { EMERGENCY_BACKOFF_CAP } else { 600 };
    time::Duration::seconds((1i64 << attempt.clamp(0, 20).saturating_sub(1)).min(cap))
}

/// The longest pause, in seconds, between two tries of an emergency notice.
pub const EMERGENCY_BACKOFF_CAP: i64 = 60;

/// The JSON body of a delivery: the stored payload plus the event and ids.
fn body(n: &NotificationRecord) -> String {
    let mut v: Value = serde_json::from_str(&n.payload).unwrap_or_else(|_| json!({}));
    v["event"] = n.event.clone().into();
    if let Some(e) = n.escalation {
        v["escalation_id"] = e.into();
    }
    v["delivery_id"] = n.id.into();
    v.to_string()
}

/// `X-Connect-PKI-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub(crate) fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    format!("sha256={}", hex::encode(hmac::sign(&key, format!("{timestamp}.{body}").as_bytes()).as_ref()))
}

async fn send_webhook(ra: &Ra, n: &NotificationRecord) -> Result<(), String> {
    let body = body(n);
    let ts = ra.clock.now().unix_timestamp();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let mut req = hyper::Request::post(&n.target)
        .header("content-type", "application/json")
        .header("user-agent", "connect-pki")
        .header("x-connect-pki-event", &n.event)
        .header("x-connect-pki-delivery", n.id.to_string())
        .header("x-connect-pki-timestamp", ts.to_string());
    if let Some(secret) = &ra.settings.notify.webhook_secret {
        req = req.header("x-connect-pki-signature", signature(secret, ts, &body));
    }
    let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "timed out after 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() { Ok(()) } else { Err(format!("HTTP {status}")) }
}

async fn send_email(ra: &Ra, n: &NotificationRecord) -> Result<(), String> {
    let cfg = &ra.settings.notify;
    let SmtpUrl(url) = cfg.smtp_url.as_ref().ok_or("no SMTP server configured")?;
    let v: Value = serde_json::from_str(&body(n)).unwrap_or_default();
    let (subject, text) = match n.event.as_str() {
        "expiring" => crate::expiry::mail(&v),
        "review_due" => crate::review::mail(&v),
        event => emergency_mail(event, n.escalation.unwrap_or_default(), &v),
    };
    let text = signed_off(text, &ra.settings.city_desk);
    let message = lettre::Message::builder()
        .from(cfg.mail_from.clone())
        .to(n.target.parse().map_err(|e| format!("recipient {}: {e}", n.target))?)
        .subject(subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| e.to_string())?;
    let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
        .map_err(|e| format!("SMTP URL: {e}"))?
        .timeout(Some(Duration::from_secs(10)))
        .build();
    transport.send(message).await.map(|_| ()).map_err(|e| e.to_string())
}

/// `text` with the number to call at its end, when 行政管理課's is configured.
fn signed_off(text: String, desk: &connect_pki_domain::city_desk::CityDesk) -> String {
    if desk.phone.is_none() {
        return text;
    }
    format!("{}\n\n至急のときの連絡先: {}\n", desk.fill(&text).trim_end(), desk.named())
}

/// The subject and text of a notice about an emergency report.
fn emergency_mail(event: &str, escalation: i64, v: &Value) -> (String, String) {
    let subject = match event {
        "escalated" => format!("【至急】端末紛失の届出が行政管理課に回されました（受付 {escalation}）"),
        _ => format!("【緊急】端末紛失の届出（受付 {escalation}）"),
    };
    let text = format!(
        "端末紛失の届出がありました。端末の証明書は一時停止済みです。\n\n受付番号: {}\n施設: {}\n職員: {}（{}）\n端末: {} {}\n担当: {}\n\n対応: {}\n",
        escalation,
        v["facility_name"].as_str().unwrap_or(""),
        v["display_name"].as_str().unwrap_or(""),
        v["login_id"].as_str().unwrap_or(""),
        v["device_id"],
        v["device_label"].as_str().unwrap_or(""),
        if v["queue"] == "admin_division" { "行政管理課" } else { "施設管理者" },
        v["console_url"].as_str().unwrap_or("緊急届出コンソール"),
    );
    (subject, text)
}
