//! Emergency reports and the escalation queue (運用ルール 5: 時間外等で施設管理者が
//! 対応出来ない場合は行政管理課へ). A report puts the device on hold at once —
//! effective before the response, like a revocation — and opens an
//! escalation routed by the business calendar.

use std::net::IpAddr;

use connect_pki_domain::escalation::{Outcome, Resolver, Routing, check_resolution, route_for};
use connect_pki_domain::sign_in::source_of;
use connect_pki_domain::{Action, DeviceId, Role, Serial, UserId, UserStatus, authorize};
use connect_pki_store::{
    DeviceRecord, EscalationRecord, NewEscalation, NotificationRecord, PhoneCall, SignInGate, UserRecord,
};

use crate::devices::managed_device;
use connect_pki_domain::calendar::tokyo;

use crate::Ra;
use crate::error::ServiceError;
use crate::publish;
use crate::requester::Requester;
use crate::secrets::verify_password;

/// Whether the office is open now.
pub(crate) fn business_hours_now(ra: &Ra) -> Result<bool, ServiceError> {
    let (d, t) = tokyo(ra.clock.now())?;
    Ok(ra.settings.calendar.is_open(d, t))
}

fn routing(ra: &Ra, holder: Role) -> Result<Routing, ServiceError> {
    let now = ra.clock.now();
    Ok(route_for(holder, now, tokyo(now)?, &ra.settings.calendar, ra.settings.escalation_sla))
}

/// An argon2id hash of nothing anyone knows, made once, to check unknown
/// login IDs against at the same cost as real ones.
async fn dummy_hash() -> Result<String, ServiceError> {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_try_init(|| async { crate::secrets::hash_password(crate::secrets::random_secret(24)?).await })
        .await
        .cloned()
}

/// How long the emergency page's ticket lets a signed-in person pick a device.
pub const TICKET_TTL: time::Duration = time::Duration::minutes(10);

/// Signs a person in on the emergency page or API with login ID and password
/// (their device, and its certificate, are gone). The attempt is counted
/// before the password is checked (`Store::begin_sign_in`); an unknown login
/// ID, a wrong password and an attempt the throttle refuses all answer
/// [`ServiceError::SignInFailed`] after one argon2 run. Returns the account
/// and the audit name of the caller.
async fn sign_in(
    ra: &Ra,
    login_id: &str,
    password: &str,
    client: IpAddr,
) -> Result<(UserRecord, String), ServiceError> {
    let now = ra.clock.now();
    let actor = format!("public:{client}");
    let source = source_of(client);
    let login_id = login_id.trim();
    let typed = ra.pseudonyms.of(login_id);
    let gate = ra.store.begin_sign_in(login_id, &typed, &source, &actor, now).await?;
    let (user, hash) = match gate {
        SignInGate::Check { user, password_hash: Some(hash) } => (Some(user), hash),
        // Spend the time a real check would, so timing tells none of these apart.
        SignInGate::Check { .. } | SignInGate::Unknown | SignInGate::Refused => (None, dummy_hash().await?),
    };
    let right = verify_password(password.to_string(), hash).await;
    let Some(user) = user.filter(|_| right) else {
        return Err(ServiceError::SignInFailed);
    };
    if user.status != UserStatus::Active {
        return Err(ServiceError::AccountDisabled(user.status.as_str()));
    }
    ra.store.sign_in_succeeded(&user, &source, &actor, now).await?;
    Ok((user, actor))
}

/// A staff member reports their own device lost, signing in as [`sign_in`]
/// does, naming the device by its id (the JSON API).
pub async fn report_own(
    ra: &Ra,
    login_id: &str,
    password: &str,
    device: DeviceId,
    client: IpAddr,
) -> Result<(EscalationRecord, Vec<Serial>), ServiceError> {
    let (user, actor) = sign_in(ra, login_id, password, client).await?;
    report_device(ra, &user, device, actor).await
}

async fn report_device(
    ra: &Ra,
    user: &UserRecord,
    device: DeviceId,
    actor: String,
) -> Result<(EscalationRecord, Vec<Serial>), ServiceError> {
    let d = ra.store.device(device).await?.ok_or(ServiceError::NotFound("device"))?;
    if d.user != user.id {
        return Err(ServiceError::NotYourDevice);
    }
    open(ra, &d, user, Opening { channel: "self", reported_by: Some(user.id), note: String::new(), actor, call: None })
        .await
}

/// The emergency page's first step: signs in and returns a ticket good for
/// one report within [`TICKET_TTL`], with the person's devices in use (so
/// that they choose one by its label, not by a number they never saw).
pub async fn ticket(
    ra: &Ra,
    login_id: &str,
    password: &str,
    client: IpAddr,
) -> Result<(String, Vec<DeviceRecord>), ServiceError> {
    let (user, _) = sign_in(ra, login_id, password, client).await?;
    let ticket = crate::secrets::random_secret(24)?;
    let now = ra.clock.now();
    ra.store.issue_report_ticket(&crate::secrets::code_hash(&ticket), user.id, now + TICKET_TTL, now).await?;
    let devices = ra
        .store
        .devices_of(user.id)
        .await?
        .into_iter()
        .filter(|d| d.status == connect_pki_domain::DeviceStatus::Active)
        .collect();
    Ok((ticket, devices))
}

/// The second step: reports `device` with a ticket from [`ticket`], which
/// it uses up. An unknown, used or expired ticket means signing in again.
pub async fn report_with_ticket(
    ra: &Ra,
    ticket: &str,
    device: DeviceId,
    client: IpAddr,
) -> Result<(EscalationRecord, Vec<Serial>), ServiceError> {
    let hash = crate::secrets::code_hash(ticket.trim());
    let user = ra.store.take_report_ticket(&hash, ra.clock.now()).await?.ok_or(ServiceError::SignInFailed)?;
    let user = ra.store.user(user).await?.ok_or(ServiceError::SignInFailed)?;
    if user.status != UserStatus::Active {
        return Err(ServiceError::AccountDisabled(user.status.as_str()));
    }
    report_device(ra, &user, device, format!("public:{client}")).await
}

/// A manager (own facility) or 行政管理課 (e.g. taking a call) reports a
/// device lost. A call 行政管理課 takes names who called and a number to
/// call back (電話での届出), kept with the report and in its audit row.
pub async fn report_for(
    ra: &Ra,
    caller: &Requester,
    device: DeviceId,
    note: String,
    call: Option<PhoneCall>,
) -> Result<(EscalationRecord, Vec<Serial>), ServiceError> {
    let (d, holder) = managed_device(ra, caller, device).await?;
    authorize(&caller.actor, Action::WorkEscalations(d.facility))?;
    let channel = if caller.actor.role == Role::AdminDivision { "phone" } else { "manager" };
    let note = connect_pki_domain::validate::optional_text("note", Some(&note), 1000)?.unwrap_or_default();
    let call = match call {
        Some(c) => Some(PhoneCall {
            caller: connect_pki_domain::validate::text("caller_name", &c.caller, 100)?,
            callback: connect_pki_domain::validate::text("callback_number", &c.callback, 30)?,
        }),
        None => None,
    };
    let note = match &call {
        Some(c) => {
            format!("電話：{}（折り返し {}）{}{note}", c.caller, c.callback, if note.is_empty() { "" } else { " " })
        }
        None => note,
    };
    open(
        ra,
        &d,
        &holder,
        Opening { channel, reported_by: Some(caller.actor.user), note, actor: caller.audit_name.clone(), call },
    )
    .await
}

/// Who opens a report, and how it came in.
struct Opening {
    channel: &'static str,
    reported_by: Option<UserId>,
    note: String,
    actor: String,
    call: Option<PhoneCall>,
}

/// Opens the escalation for device `d` of `holder`, both already read.
async fn open(
    ra: &Ra,
    d: &DeviceRecord,
    holder: &UserRecord,
    o: Opening,
) -> Result<(EscalationRecord, Vec<Serial>), ServiceError> {
    let device = d.id;
    let r = routing(ra, holder.role)?;
    let new = NewEscalation {
        device,
        channel: o.channel,
        reported_by: o.reported_by,
        queue: r.queue,
        escalate_at: r.escalate_at,
        note: o.note,
        actor: o.actor,
        phone_call: o.call,
        notify: crate::notify::targets(ra, d.facility).await?,
        payload: crate::notify::payload(ra, d, holder, r.queue.as_str()).await?,
    };
    let opened = ra.store.open_escalation(&new, ra.clock.now()).await?;
    publish(ra).await?;
    tracing::warn!(
        escalation = opened.escalation.id,
        device = device.0,
        queue = r.queue.as_str(),
        held = opened.held.len(),
        taken_over = opened.taken_over.len(),
        "emergency report: device on hold"
    );
    // The reporter is told every certificate now on hold for the report,
    // also those its facility's suspension had already put on hold.
    let mut held = opened.held;
    held.extend(opened.taken_over);
    Ok((opened.escalation, held))
}

/// Escalations the caller may work: all for 行政管理課, their facility's for a manager.
pub async fn list(ra: &Ra, caller: &Requester, open_only: bool) -> Result<Vec<EscalationRecord>, ServiceError> {
    let facility = match caller.actor.role {
        Role::AdminDivision => None,
        _ => {
            authorize(&caller.actor, Action::WorkEscalations(caller.actor.facility))?;
            Some(caller.actor.facility)
        }
    };
    Ok(ra.store.escalations(facility, open_only).await?)
}

async fn workable(ra: &Ra, caller: &Requester, id: i64) -> Result<EscalationRecord, ServiceError> {
    let e = ra.store.escalation(id).await?.ok_or(ServiceError::NotFound("escalation"))?;
    authorize(&caller.actor, Action::WorkEscalations(e.facility))?;
    Ok(e)
}

/// An escalation the caller may claim and resolve: resolving releases or
/// revokes the holder's certificates, so it is an act on the holder.
/// An escalation the caller may act on, with the device's holder.
async fn actionable(ra: &Ra, caller: &Requester, id: i64) -> Result<(EscalationRecord, UserRecord), ServiceError> {
    let e = workable(ra, caller, id).await?;
    let (_, holder) = managed_device(ra, caller, e.device).await?;
    Ok((e, holder))
}

/// An escalation with what a person needs to act on it.
#[derive(Debug)]
pub struct QueueEntry {
    pub escalation: EscalationRecord,
    pub device: DeviceRecord,
    pub user: UserRecord,
    pub facility_name: String,
    /// Display name of whoever claimed it.
    pub claimed_by: Option<String>,
}

/// The escalations the caller may work (see [`list`]), with names.
pub async fn queue(ra: &Ra, caller: &Requester) -> Result<Vec<QueueEntry>, ServiceError> {
    // Facilities and claimers repeat across a queue: each is read once.
    let mut facilities = std::collections::HashMap::new();
    let mut claimers = std::collections::HashMap::new();
    let mut out = Vec::new();
    for e in list(ra, caller, false).await? {
        let device = ra.store.device(e.device).await?.ok_or(ServiceError::NotFound("device"))?;
        let user = ra.store.user(device.user).await?.ok_or(ServiceError::NotFound("user"))?;
        let facility_name = match facilities.get(&e.facility) {
            Some(name) => String::clone(name),
            None => {
                let name = ra.store.facility(e.facility).await?.map(|f| f.name).unwrap_or_default();
                facilities.insert(e.facility, name.clone());
                name
            }
        };
        let claimed_by = match e.claimed_by {
            Some(u) if !claimers.contains_key(&u) => {
                let name = ra.store.user(u).await?.and_then(|u| u.display_name);
                let name = name.unwrap_or_else(|| format!("職員 {u}"));
                claimers.insert(u, name.clone());
                Some(name)
            }
            Some(u) => claimers.get(&u).cloned(),
            None => None,
        };
        out.push(QueueEntry { escalation: e, device, user, facility_name, claimed_by });
    }
    Ok(out)
}

/// The delivery log of an escalation's notifications.
pub async fn notifications(ra: &Ra, caller: &Requester, id: i64) -> Result<Vec<NotificationRecord>, ServiceError> {
    workable(ra, caller, id).await?;
    let admin = caller.actor.role == Role::AdminDivision;
    let mut all = ra.store.notifications(id).await?;
    for n in &mut all {
        n.target = crate::notify::shown_target(n.channel, &n.target, admin);
    }
    Ok(all)
}

/// Claims an escalation.
pub async fn claim(ra: &Ra, caller: &Requester, id: i64, note: &str) -> Result<EscalationRecord, ServiceError> {
    actionable(ra, caller, id).await?;
    Ok(ra.store.claim_escalation(id, caller.actor.user, note, ra.clock.now()).await?)
}

/// Resolves a claimed escalation (see the rules in the domain).
pub async fn resolve(
    ra: &Ra,
    caller: &Requester,
    id: i64,
    outcome: Outcome,
    note: &str,
) -> Result<(EscalationRecord, Vec<Serial>), ServiceError> {
    let (e, holder) = actionable(ra, caller, id).await?;
    let resolver = Resolver {
        role: caller.actor.role,
        // Whoever reported it, or holds the device (a manager whose device
        // 行政管理課 reported): neither may lift the hold on their own.
        is_reporter: e.reported_by == Some(caller.actor.user) || holder.id == caller.actor.user,
        is_claimer: e.claimed_by == Some(caller.actor.user),
    };
    check_resolution(resolver, outcome, business_hours_now(ra)?)?;
    let note = connect_pki_domain::validate::optional_text("note", Some(note), 1000)?.unwrap_or_default();
    let out = ra.store.resolve_escalation(id, outcome, caller.actor.user, &note, ra.clock.now()).await?;
    publish(ra).await?;
    Ok(out)
}

/// Moves overdue reports to 行政管理課 and turns holds past their limit into
/// revocations. Run by a worker, and at start.
pub async fn run_due(ra: &Ra) -> Result<(), ServiceError> {
    let now = crate::due_now(ra).await?;
    for e in ra.store.overdue_escalations(now).await? {
        if crate::notify::escalate(ra, &e, now).await?.is_some() {
            tracing::warn!(escalation = e.id, "not claimed within the SLA: moved to 行政管理課");
        }
    }
    let revoked = ra.store.revoke_expired_holds(now - ra.settings.hold_limit, now).await?;
    if !revoked.is_empty() {
        tracing::warn!(count = revoked.len(), "holds past their limit revoked (keyCompromise)");
        publish(ra).await?;
    }
    Ok(())
}
