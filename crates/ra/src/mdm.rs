//! A device-management system (Intune, Jamf…) as a client of the service
//! (issue 26, item 3). It holds a client certificate of the role
//! `device_management`, registered by 行政管理課 in the facility it serves,
//! and may do two things for that facility's people and nothing else:
//!
//! * fetch a one-time enrollment challenge bound to one person (the
//!   "dynamic challenge" of Jamf and Intune): a code of short life that its
//!   agent spends on the device by EST, never one shared password;
//! * report a device retired, wiped or lost by a signed webhook (HMAC-SHA256
//!   over the timestamp and the body, under a secret of this system; a
//!   replay window), which revokes the device's certificates before the
//!   answer, as a manager's action would, audited in the system's name.

use aws_lc_rs::hmac;
use connect_pki_domain::{Action, Actor, DeviceId, Role, Serial, UserId, UserStatus, authorize};
use connect_pki_store::{DeviceOut, Once};
use time::{Duration, OffsetDateTime};

use crate::error::{NotAuthenticated, ServiceError};
use crate::requester::Requester;
use crate::secrets::new_code;
use crate::{Ra, publish};

/// How far a webhook's timestamp may be from our clock, either way; a
/// signature is remembered (and refused again) for twice as long.
pub const WEBHOOK_WINDOW: Duration = Duration::minutes(5);

/// The key the webhook secrets derive from (`<data-dir>/mdm-webhook.key`).
pub struct WebhookKey(hmac::Key);

impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(***)")
    }
}

impl WebhookKey {
    pub fn new(key: hmac::Key) -> Self {
        Self(key)
    }

    /// The webhook secret of the device-management account `sender` (hex):
    /// derived, so nothing secret is stored in the database.
    fn secret(&self, sender: UserId) -> String {
        hex::encode(hmac::sign(&self.0, format!("connect-pki mdm webhook secret v1 {sender}").as_bytes()))
    }
}

/// A one-time challenge (an enrollment code of short life) for a device of
/// `user`, asked for by a device-management system serving their facility.
pub async fn challenge(ra: &Ra, caller: &Requester, user: UserId) -> Result<Challenge, ServiceError> {
    let person = ra.store.user(user).await?.ok_or(ServiceError::NotFound("user"))?;
    authorize(&caller.actor, Action::ManageDevicesFor(person.target()))?;
    let now = ra.clock.now();
    let code = new_code(person.id, ra.settings.challenge_ttl, now)?;
    ra.store.create_enrollment_code(&code.stored, &caller.audit_name, now).await?;
    Ok(Challenge { code: code.display(), expires_at: code.stored.expires_at, login_id: person.login_id })
}

/// A challenge, and whom it enrolls (the CN their request must carry).
#[derive(Clone)]
pub struct Challenge {
    pub code: String,
    pub expires_at: OffsetDateTime,
    pub login_id: Option<String>,
}

connect_pki_domain::redacted_debug!(Challenge { expires_at, login_id; code });

/// The webhook secret of a device-management account, for 行政管理課 to
/// hand to the system's administrator.
pub async fn webhook_secret(ra: &Ra, caller: &Requester, account: UserId) -> Result<String, ServiceError> {
    let user = ra.store.user(account).await?.ok_or(ServiceError::NotFound("user"))?;
    // Checked as an act on a device-management account whatever the user
    // is: only 行政管理課 learns even that it is not one.
    let target = connect_pki_domain::Target { facility: user.facility, role: Role::DeviceManagement };
    authorize(&caller.actor, Action::ActOnUser(target))?;
    if user.role != Role::DeviceManagement {
        return Err(ServiceError::Invalid { field: "user", why: "not a device-management account".into() });
    }
    Ok(ra.webhook_key.secret(user.id))
}

/// A webhook as it arrived: who says they sent it, when, the signature
/// (hex HMAC-SHA256 of `"{timestamp}.{body}"`), and the body.
#[derive(Debug)]
pub struct Signed<'a> {
    pub sender: UserId,
    pub timestamp: &'a str,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// What happened to a device, as the system reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Retired or handed back.
    Retired,
    /// Erased: its key is gone.
    Wiped,
    /// Lost or stolen: its key may be in someone's hands.
    Lost,
}

impl Event {
    pub fn parse(s: &str) -> Result<Self, ServiceError> {
        match s {
            "retired" => Ok(Event::Retired),
            "wiped" => Ok(Event::Wiped),
            "lost" => Ok(Event::Lost),
            _ => Err(ServiceError::Invalid { field: "event", why: "one of retired, wiped, lost".into() }),
        }
    }
}

/// The system a webhook proved it came from.
#[derive(Debug)]
pub struct Sender {
    actor: Actor,
    audit_name: String,
}

/// Checks a webhook's sender, timestamp and signature. Every failure is the
/// same refusal to the caller; the reason goes to the log.
pub async fn verify(ra: &Ra, w: &Signed<'_>) -> Result<Sender, ServiceError> {
    let refused = |why| ServiceError::NotAuthenticated(NotAuthenticated::BadSignature(why));
    let sender = ra.store.user(w.sender).await?.ok_or_else(|| refused("unknown sender"))?;
    if sender.role != Role::DeviceManagement || sender.status != UserStatus::Active {
        return Err(refused("unknown sender"));
    }
    let at = w.timestamp.parse::<i64>().ok().and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
    let at = at.ok_or_else(|| refused("bad timestamp"))?;
    if (ra.clock.now() - at).abs() > WEBHOOK_WINDOW {
        return Err(refused("timestamp outside the window"));
    }
    let given = hex::decode(w.signature.trim().trim_start_matches("sha256=")).map_err(|_| refused("bad signature"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, ra.webhook_key.secret(sender.id).as_bytes());
    let mut signed = Vec::with_capacity(w.timestamp.len() + 1 + w.body.len());
    signed.extend_from_slice(w.timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(w.body);
    hmac::verify(&key, &signed, &given).map_err(|_| refused("bad signature"))?;
    let actor = Actor { user: sender.id, role: sender.role, facility: sender.facility };
    Ok(Sender { audit_name: format!("user:{}", sender.id), actor })
}

/// Carries out a verified webhook's event on the device holding `serial`:
/// its certificates revoked (and published) before this returns, once per
/// signature.
pub async fn device_event(
    ra: &Ra,
    sender: &Sender,
    w: &Signed<'_>,
    event: Event,
    serial: &Serial,
) -> Result<(DeviceId, Vec<Serial>), ServiceError> {
    let holder = ra.store.identity_by_serial(serial).await?.ok_or(ServiceError::NotFound("certificate"))?;
    authorize(&sender.actor, Action::ManageDevicesFor(holder.user.target()))?;
    let out = if event == Event::Lost { DeviceOut::Lost } else { DeviceOut::Retired };
    let once = Once { sender: w.sender, signature: w.signature.trim().to_string(), window: WEBHOOK_WINDOW * 2 };
    let revoked = ra.store.device_out_once(holder.device, out, &sender.audit_name, ra.clock.now(), Some(&once)).await?;
    publish(ra).await?;
    Ok((holder.device, revoked))
}
