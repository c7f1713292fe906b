//! Users: registration, the lifecycle the domain decides (`domain::user`:
//! retirement now or scheduled, deletion of personal data). The emergency
//! sign-in's throttle is in `sign_in.rs`.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::user::{self as domain_user, Departure};
use connect_pki_domain::{AuditAction, FacilityId, Reason, Role, Serial, UserId, UserStatus};

use crate::audit::AuditEntry;
use crate::certificates::revoke_where;
use crate::error::Conflict;
use crate::records::{NewUser, UserRecord, text, user_by_id};
use crate::{Store, StoreError, WriteTx, instant, secs};

/// Retires `user` inside `tx` (see [`Store::retire_user`]).
async fn retire_in(
    tx: &mut WriteTx,
    user: UserId,
    actor: &str,
    who: Departure,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    let u = user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))?;
    let Some(next) = domain_user::retire(u.status) else { return Ok(Vec::new()) };
    check_departure(tx, &u, who).await?;
    sqlx::query("update users set status = $1, retire_at = null, updated_at = $2 where id = $3 and status = $4")
        .bind(next.as_str())
        .bind(secs(now))
        .bind(user.0)
        .bind(u.status.as_str())
        .execute(&mut **tx)
        .await?;
    let revoked = stop_devices(tx, user, actor, now).await?;
    let entry = AuditEntry::ok(
        actor,
        AuditAction::UserRetire,
        format!("user:{user}"),
        json!({"revoked": revoked}),
        Some(u.facility),
        Some(user),
    );
    tx.audit(now, &entry).await?;
    Ok(revoked)
}

/// Refuses taking `u` away from their facility when that leaves it with no
/// active manager (`domain::user::check_departure`), counted under the
/// writer lock so two managers retiring each other at once cannot both go.
pub(crate) async fn check_departure(tx: &mut WriteTx, u: &UserRecord, who: Departure) -> Result<(), StoreError> {
    if u.role != Role::FacilityManager {
        return Ok(());
    }
    let others: i64 = sqlx::query(
        "select count(*) as n from users where facility_id = $1 and role = $2 and status = $3 and id <> $4",
    )
    .bind(u.facility.0)
    .bind(Role::FacilityManager.as_str())
    .bind(UserStatus::Active.as_str())
    .bind(u.id.0)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    Ok(domain_user::check_departure(u.id.0, u.role, u.status, others, who)?)
}

/// Deletes the account in `tx`: personal data erased, the row and its
/// audit trail kept, the login ID free again.
async fn delete_in(tx: &mut WriteTx, user: UserId, actor: &str, now: OffsetDateTime) -> Result<(), StoreError> {
    let u = user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))?;
    let Some(next) = domain_user::delete(u.status)? else { return Ok(()) };
    erase_personal_data(tx, user, next, now).await?;
    let entry = AuditEntry::ok(
        actor,
        AuditAction::UserDelete,
        format!("user:{user}"),
        json!({"personal_data": "removed"}),
        Some(u.facility),
        Some(user),
    );
    tx.audit(now, &entry).await
}

/// `user` as they are, if they can still change (invited or active);
/// else the transition to `to` is refused.
async fn open_user(tx: &mut WriteTx, user: UserId, to: &'static str) -> Result<UserRecord, StoreError> {
    let u = user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))?;
    if !matches!(u.status, UserStatus::Invited | UserStatus::Active) {
        return Err(connect_pki_domain::DomainError::InvalidTransition { from: u.status.as_str(), to }.into());
    }
    Ok(u)
}

/// Stops everything `user` holds: active devices retired, every
/// certificate in force revoked (affiliationChanged). Returns the serials.
async fn stop_devices(
    tx: &mut WriteTx,
    user: UserId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Vec<Serial>, StoreError> {
    tx.update_at(
        "update devices set status = 'retired', updated_at = $1 where user_id = $2 and status = 'active'",
        now,
        user.0,
    )
    .await?;
    let devices = "c.device_id in (select id from devices where user_id = $1)";
    revoke_where(tx, devices, user.0, Reason::AffiliationChanged, actor, now).await
}

/// The user and their scheduled retirement, read in `tx`.
async fn retirement_of(tx: &mut WriteTx, user: UserId) -> Result<(UserStatus, Option<OffsetDateTime>), StoreError> {
    let row = sqlx::query("select status, retire_at from users where id = $1")
        .bind(user.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    Ok((text(&row, "status")?, row.try_get::<Option<i64>, _>("retire_at")?.map(instant).transpose()?))
}

/// Removes a user's personal data, keeping the rows and the audit trail.
async fn erase_personal_data(
    tx: &mut WriteTx,
    user: UserId,
    status: UserStatus,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    // What identifies them elsewhere, read before it goes from `users`.
    let who = sqlx::query("select login_id, email from users where id = $1").bind(user.0).fetch_one(&mut **tx).await?;
    let (login_id, email): (Option<String>, Option<String>) = (who.try_get("login_id")?, who.try_get("email")?);
    // A manager's own facility application carried their name, e-mail and phone.
    if let Some(login_id) = &login_id {
        sqlx::query(
            "update applications set manager_name = '', manager_login_id = '', manager_email = '', \
             manager_phone = '', updated_at = $1 where manager_login_id = $2",
        )
        .bind(secs(now))
        .bind(login_id)
        .execute(&mut **tx)
        .await?;
    }
    // E-mails sent (or due) to them: the address goes; one still due is not sent.
    if let Some(email) = &email {
        sqlx::query(
            "update notifications set target = '', last_error = case when status = 'pending' \
             then 'recipient erased' else last_error end, status = case when status = 'pending' \
             then 'failed' else status end where channel = 'email' and target = $1",
        )
        .bind(email)
        .execute(&mut **tx)
        .await?;
    }
    // Notifications about them (a report on their device, an expiry notice)
    // keep what happened, by id, without their name, login ID or device label.
    let about = sqlx::query("select id, payload from notifications where payload like $1")
        .bind(format!("%\"user_id\":{}%", user.0))
        .fetch_all(&mut **tx)
        .await?;
    for row in about {
        let id: i64 = row.try_get("id")?;
        let payload: String = row.try_get("payload")?;
        let Ok(serde_json::Value::Object(mut body)) = serde_json::from_str(&payload) else { continue };
        if body.get("user_id").and_then(serde_json::Value::as_i64) != Some(user.0) {
            continue;
        }
        for field in ["login_id", "display_name", "device_label"] {
            body.remove(field);
        }
        body.insert("personal_data".into(), "erased".into());
        sqlx::query("update notifications set payload = $1 where id = $2")
            .bind(serde_json::Value::Object(body).to_string())
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    // Certificates issued before their subjects were pseudonyms named the
    // login ID; all of theirs are revoked by now, and only serials and
    // statuses are needed for the CRL and OCSP.
    sqlx::query("update certificates set der = $1 where device_id in (select id from devices where user_id = $2)")
        .bind(Vec::<u8>::new())
        .bind(user.0)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "update users set login_id = null, display_name = null, email = null, password_hash = null, \
         status = $1, updated_at = $2 where id = $3",
    )
    .bind(status.as_str())
    .bind(secs(now))
    .bind(user.0)
    .execute(&mut **tx)
    .await?;
    tx.update_at("update devices set label = '', updated_at = $1 where user_id = $2", now, user.0).await?;
    // The addresses the emergency sign-in was tried from.
    sqlx::query("delete from sign_in_sources where user_id = $1").bind(user.0).execute(&mut **tx).await?;
    tx.update_at("update enrollment_codes set expires_at = $1 where user_id = $2 and redeemed_at is null", now, user.0)
        .await?;
    Ok(())
}

/// What may change about a person: each field given is set.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub role: Option<Role>,
}

impl Store {
    /// Changes a person's name, e-mail address or role (職員 ↔ 施設管理者),
    /// in one transaction with its audit row, which names the fields, not
    /// their values (the chain cannot forget a name once written). Taking
    /// the manager role from the facility's last active manager goes only
    /// as `who` allows.
    pub async fn change_user(
        &self,
        user: UserId,
        change: &UserChange,
        actor: &str,
        who: Departure,
        now: OffsetDateTime,
    ) -> Result<UserRecord, StoreError> {
        self.write(async |tx| {
            let u = open_user(tx, user, "changed").await?;
            let role = change.role.filter(|r| *r != u.role);
            if role.is_some() {
                check_departure(tx, &u, who).await?;
            }
            let mut fields = Vec::new();
            let asked = [("display_name", &change.display_name, &u.display_name), ("email", &change.email, &u.email)];
            for (field, value, was) in asked {
                if let Some(v) = value.as_ref().filter(|v| Some(*v) != was.as_ref()) {
                    sqlx::query(&format!("update users set {field} = $1, updated_at = $2 where id = $3"))
                        .bind(v)
                        .bind(secs(now))
                        .bind(user.0)
                        .execute(&mut **tx)
                        .await?;
                    fields.push(field);
                }
            }
            let mut detail = json!({});
            if let Some(r) = role {
                sqlx::query("update users set role = $1, updated_at = $2 where id = $3")
                    .bind(r.as_str())
                    .bind(secs(now))
                    .bind(user.0)
                    .execute(&mut **tx)
                    .await?;
                fields.push("role");
                detail = json!({"from": u.role, "to": r});
            }
            if !fields.is_empty() {
                detail["fields"] = json!(fields);
                let entry = AuditEntry::ok(
                    actor,
                    AuditAction::UserUpdate,
                    format!("user:{user}"),
                    detail,
                    Some(u.facility),
                    Some(user),
                );
                tx.audit(now, &entry).await?;
            }
            user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))
        })
        .await
    }

    /// 異動: moves an active or invited person to facility `to`. Their
    /// devices are retired and every certificate in force revoked
    /// (affiliationChanged), codes not yet used expire; the account, its
    /// login ID and password stay. The last active manager of the facility
    /// they leave goes only as `who` allows. Returns the revoked serials.
    pub async fn transfer_user(
        &self,
        user: UserId,
        to: FacilityId,
        actor: &str,
        who: Departure,
        now: OffsetDateTime,
    ) -> Result<Vec<Serial>, StoreError> {
        self.write(async |tx| {
            let u = open_user(tx, user, "transferred").await?;
            let target = crate::records::facility_by_id(tx, to).await?.ok_or(StoreError::NotFound("facility"))?;
            if target.status != connect_pki_domain::FacilityStatus::Approved || to == u.facility {
                let from = if to == u.facility { "the same facility" } else { target.status.as_str() };
                return Err(connect_pki_domain::DomainError::InvalidTransition { from, to: "transferred" }.into());
            }
            check_departure(tx, &u, who).await?;
            let revoked = stop_devices(tx, user, actor, now).await?;
            tx.update_at(
                "update enrollment_codes set expires_at = $1 where user_id = $2 and redeemed_at is null",
                now,
                user.0,
            )
            .await?;
            sqlx::query("update users set facility_id = $1, updated_at = $2 where id = $3")
                .bind(to.0)
                .bind(secs(now))
                .bind(user.0)
                .execute(&mut **tx)
                .await?;
            let detail = json!({"from_facility": u.facility, "to_facility": to, "revoked": revoked});
            // Recorded under the facility left; the new one sees the person arrive in its list.
            let entry = AuditEntry::ok(
                actor,
                AuditAction::UserTransfer,
                format!("user:{user}"),
                detail,
                Some(u.facility),
                Some(user),
            );
            tx.audit(now, &entry).await?;
            Ok(revoked)
        })
        .await
    }

    /// Registers a user in `facility`.
    pub async fn create_user(
        &self,
        facility: FacilityId,
        new: &NewUser,
        status: UserStatus,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<UserRecord, StoreError> {
        self.write(async |tx| insert_user(tx, facility, new, status, actor, now).await).await
    }

    /// The users of `ids` that exist (for naming the people a record
    /// mentions), in id order.
    pub async fn users_by_ids(&self, ids: &[UserId]) -> Result<Vec<UserRecord>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(400) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("select {} from users u where u.id in ({list}) order by u.id", UserRecord::COLUMNS);
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.0);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(UserRecord::from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// One user.
    pub async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        user_by_id(&mut conn, id).await
    }

    /// Retires a user now: account disabled, devices retired, every valid or
    /// held certificate revoked with affiliationChanged — one transaction,
    /// with the account's deletion when `delete` says so. Retiring a retired
    /// user changes nothing. The last active manager of a facility goes
    /// only as `who` allows.
    pub async fn retire_user(
        &self,
        user: UserId,
        actor: &str,
        who: Departure,
        delete: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<Serial>, StoreError> {
        self.write(async |tx| {
            let revoked = retire_in(tx, user, actor, who, now).await?;
            if delete {
                delete_in(tx, user, actor, now).await?;
            }
            Ok(revoked)
        })
        .await
    }

    /// Carries out a scheduled retirement if it is still scheduled and due at
    /// `now`; of several instances running it, one does it and the others
    /// find nothing to do. Returns `None` when nothing was due.
    pub async fn retire_if_due(&self, user: UserId, now: OffsetDateTime) -> Result<Option<Vec<Serial>>, StoreError> {
        self.write(async |tx| {
            let (status, retire_at) = retirement_of(tx, user).await?;
            if !domain_user::retirement_due(status, retire_at, now) {
                return Ok(None);
            }
            // Its schedule was checked against the last-manager rule when made.
            let actor = "system:scheduled-retirement";
            let revoked = retire_in(tx, user, actor, Departure::Allowed, now).await?;
            let delete: i64 = sqlx::query("select delete_on_retire from users where id = $1")
                .bind(user.0)
                .fetch_one(&mut **tx)
                .await?
                .try_get("delete_on_retire")?;
            if delete == 1 {
                delete_in(tx, user, actor, now).await?;
            }
            Ok(Some(revoked))
        })
        .await
    }

    /// Schedules a retirement at `at` (a worker carries it out, also after
    /// downtime), with the account's deletion when `delete` says so.
    #[allow(clippy::too_many_arguments)]
    pub async fn schedule_retirement(
        &self,
        user: UserId,
        at: OffsetDateTime,
        delete: bool,
        actor: &str,
        who: Departure,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(async |tx| {
            let u = user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))?;
            domain_user::check_schedule_retirement(u.status)?;
            check_departure(tx, &u, who).await?;
            sqlx::query("update users set retire_at = $1, delete_on_retire = $2, updated_at = $3 where id = $4")
                .bind(secs(at))
                .bind(i64::from(delete))
                .bind(secs(now))
                .bind(user.0)
                .execute(&mut **tx)
                .await?;
            let entry = AuditEntry::ok(
                actor,
                AuditAction::UserRetireScheduled,
                format!("user:{user}"),
                json!({"at": secs(at), "delete_account": delete}),
                Some(u.facility),
                Some(user),
            );
            tx.audit(now, &entry).await
        })
        .await
    }

    /// Cancels a scheduled retirement that has not run yet; returns the time
    /// it was scheduled for. Under the writer lock, like the worker's
    /// `retire_if_due`: of a cancel and the retirement at its due time,
    /// whichever commits first wins and the other finds nothing to do (the
    /// cancel is then refused: the user is retired).
    pub async fn cancel_retirement(
        &self,
        user: UserId,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, StoreError> {
        self.write(async |tx| {
            let u = user_by_id(tx, user).await?.ok_or(StoreError::NotFound("user"))?;
            let (status, retire_at) = retirement_of(tx, user).await?;
            let at = domain_user::check_cancel_retirement(status, retire_at)?;
            sqlx::query("update users set retire_at = null, delete_on_retire = 0, updated_at = $1 where id = $2 and retire_at is not null")
                .bind(secs(now))
                .bind(user.0)
                .execute(&mut **tx)
                .await?;
            let entry = AuditEntry::ok(
                actor,
                AuditAction::UserRetireCancelled,
                format!("user:{user}"),
                json!({"at": secs(at)}),
                Some(u.facility),
                Some(user),
            );
            tx.audit(now, &entry).await?;
            Ok(at)
        })
        .await
    }

    /// The scheduled retirements of a facility's users: (user, when).
    pub async fn scheduled_retirements(
        &self,
        facility: FacilityId,
    ) -> Result<Vec<(UserId, OffsetDateTime)>, StoreError> {
        let rows = sqlx::query(
            "select id, retire_at from users where facility_id = $1 and retire_at is not null order by retire_at",
        )
        .bind(facility.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((UserId(r.try_get("id")?), instant(r.try_get("retire_at")?)?))).collect()
    }

    /// Users whose scheduled retirement is due.
    pub async fn due_retirements(&self, now: OffsetDateTime) -> Result<Vec<UserId>, StoreError> {
        // Only scheduled retirements are read; which are due is the domain's rule.
        let rows = sqlx::query(
            "select id, status, retire_at from users where retire_at is not null and retire_at <= $1 order by retire_at",
        )
        .bind(secs(now))
        .fetch_all(&self.pool)
        .await?;
        let mut due = Vec::new();
        for r in &rows {
            let retire_at = Some(instant(r.try_get("retire_at")?)?);
            if domain_user::retirement_due(text(r, "status")?, retire_at, now) {
                due.push(UserId(r.try_get("id")?));
            }
        }
        Ok(due)
    }

    /// The scheduled retirement of a user, if any.
    pub async fn retire_at(&self, user: UserId) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query("select retire_at from users where id = $1")
            .bind(user.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("user"))?;
        row.try_get::<Option<i64>, _>("retire_at")?.map(instant).transpose()
    }

    /// Deletes a retired user's personal data (login ID, name, e-mail,
    /// password, device labels) and marks them deleted. The rows and the audit
    /// trail stay. Only a retired user can be deleted; deleting twice is safe.
    pub async fn delete_user(&self, user: UserId, actor: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.write(async |tx| delete_in(tx, user, actor, now).await).await
    }
}

pub(crate) async fn insert_user(
    tx: &mut WriteTx,
    facility: FacilityId,
    new: &NewUser,
    status: UserStatus,
    actor: &str,
    now: OffsetDateTime,
) -> Result<UserRecord, StoreError> {
    let id: i64 = sqlx::query(
        "insert into users (facility_id, login_id, display_name, email, role, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $7) returning id",
    )
    .bind(facility.0)
    .bind(&new.login_id)
    .bind(&new.display_name)
    .bind(&new.email)
    .bind(new.role.as_str())
    .bind(status.as_str())
    .bind(secs(now))
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => Conflict::LoginIdTaken { login_id: new.login_id.clone() }.into(),
        other => other,
    })?
    .try_get("id")?;
    let record = UserRecord {
        id: UserId(id),
        facility,
        login_id: Some(new.login_id.clone()),
        display_name: Some(new.display_name.clone()),
        email: Some(new.email.clone()),
        role: new.role,
        status,
    };
    let entry = AuditEntry::ok(
        actor,
        AuditAction::UserCreate,
        format!("user:{id}"),
        // By id only: the chain cannot forget a login ID once written.
        json!({"role": new.role, "status": status}),
        Some(facility),
        Some(record.id),
    );
    tx.audit(now, &entry).await?;
    Ok(record)
}
