//! Facility applications from the public form, and their approval (the
//! facility, its manager and the manager's first enrollment code, in one
//! transaction) or rejection.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::application::ApplicationForm;
use connect_pki_domain::{AuditAction, FacilityId, FacilityKind, FacilityStatus, Role, UserId, UserStatus};

use crate::audit::AuditEntry;
use crate::enrollment::{NewCode, insert_code};
use crate::facilities::insert_facility;
use crate::records::{FacilityRecord, NewFacility, NewUser, UserRecord, text};
use crate::users::insert_user;
use crate::{Store, StoreError, WriteTx, instant, secs};

/// A stored application.
#[derive(Clone, PartialEq, Eq)]
pub struct ApplicationRecord {
    pub id: i64,
    pub status_token: String,
    pub form: ApplicationForm,
    pub status: connect_pki_domain::ApplicationStatus,
    pub decision_reason: Option<String>,
    pub facility: Option<FacilityId>,
    pub created_at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
}

connect_pki_domain::redacted_debug!(ApplicationRecord { id, form, status, decision_reason, facility, created_at, decided_at; status_token });

/// What approving an application created.
#[derive(Debug, Clone)]
pub struct Approval {
    pub facility: FacilityRecord,
    pub manager: UserRecord,
    pub code_id: i64,
}

const APPLICATION_COLUMNS: &str = "id, status_token, name, kind, address, department, manager_name, manager_login_id, \
     manager_email, manager_phone, purpose_attested, terms_version, status, decision_reason, facility_id, created_at, decided_at";

fn application_from_row(row: &sqlx::any::AnyRow) -> Result<ApplicationRecord, StoreError> {
    let decided_at: Option<i64> = row.try_get("decided_at")?;
    Ok(ApplicationRecord {
        id: row.try_get("id")?,
        status_token: row.try_get("status_token")?,
        form: ApplicationForm {
            name: row.try_get("name")?,
            kind: text::<FacilityKind>(row, "kind")?,
            address: row.try_get("address")?,
            department: row.try_get("department")?,
            manager_name: row.try_get("manager_name")?,
            manager_login_id: row.try_get("manager_login_id")?,
            manager_email: row.try_get("manager_email")?,
            manager_phone: row.try_get("manager_phone")?,
            purpose_attested: row.try_get::<i64, _>("purpose_attested")? == 1,
            terms_version: row.try_get("terms_version")?,
        },
        status: crate::records::text(row, "status")?,
        decision_reason: row.try_get("decision_reason")?,
        facility: row.try_get::<Option<i64>, _>("facility_id")?.map(FacilityId),
        created_at: instant(row.try_get("created_at")?)?,
        decided_at: decided_at.map(instant).transpose()?,
    })
}

impl Store {
    /// Records a validated application from the public form.
    pub async fn submit_application(
        &self,
        form: &ApplicationForm,
        status_token: &str,
        client: &str,
        now: OffsetDateTime,
    ) -> Result<ApplicationRecord, StoreError> {
        // A login ID already taken is not refused here: the form would answer
        // anyone whether an account exists (issue 24). The approval finds the
        // clash, and the applicant learns it on the status page.
        let id = self
            .write(async |tx| {
                let id = insert_application(tx, form, status_token, client, now).await?;
                let entry = AuditEntry::ok(
                    format!("public:{client}"),
                    AuditAction::ApplicationSubmit,
                    format!("application:{id}"),
                    // Nothing the applicant typed: the chain cannot forget what
                    // it holds, and a rejected application is purged with its
                    // free text (issue 24). The application's id leads to it
                    // while it exists.
                    json!({"kind": form.kind, "terms_version": form.terms_version, "purpose_attested": true}),
                    None,
                    None,
                );
                tx.audit(now, &entry).await?;
                Ok::<_, StoreError>(id)
            })
            .await?;
        self.application(id).await?.ok_or(StoreError::NotFound("application"))
    }

    /// One application by number.
    pub async fn application(&self, id: i64) -> Result<Option<ApplicationRecord>, StoreError> {
        let row = sqlx::query(&format!("select {APPLICATION_COLUMNS} from applications where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(application_from_row).transpose()
    }

    /// One application by its status token (the public status page).
    pub async fn application_by_token(&self, token: &str) -> Result<Option<ApplicationRecord>, StoreError> {
        let row = sqlx::query(&format!("select {APPLICATION_COLUMNS} from applications where status_token = $1"))
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(application_from_row).transpose()
    }

    /// Applications, oldest first, optionally of one status.
    pub async fn applications(&self, status: Option<&str>) -> Result<Vec<ApplicationRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "select {APPLICATION_COLUMNS} from applications where ($1 = '' or status = $1) order by id limit 1000"
        ))
        .bind(status.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(application_from_row).collect()
    }

    /// Approves a pending application: the facility, its manager (invited)
    /// and the manager's first enrollment code, in one transaction.
    pub async fn approve_application(
        &self,
        id: i64,
        decided_by: UserId,
        code: impl FnOnce(UserId) -> NewCode,
        now: OffsetDateTime,
    ) -> Result<Approval, StoreError> {
        self.write(async |tx| {
            let app = decide(tx, id, "approved", decided_by, None, now).await?;
            let actor = format!("user:{decided_by}");
            let new = NewFacility {
                name: app.form.name.clone(),
                kind: app.form.kind,
                address: app.form.address.clone(),
                department: app.form.department.clone(),
            };
            let facility = insert_facility(tx, &new, FacilityStatus::Approved, &actor, now).await?;
            let manager = NewUser {
                login_id: app.form.manager_login_id.clone(),
                display_name: app.form.manager_name.clone(),
                email: app.form.manager_email.clone(),
                role: Role::FacilityManager,
            };
            let manager = insert_user(tx, facility.id, &manager, UserStatus::Invited, &actor, now).await?;
            sqlx::query("update applications set facility_id = $1 where id = $2")
                .bind(facility.id.0)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            let code_id = insert_code(tx, &code(manager.id), &manager, &actor, now).await?;
            // The applicant accepted these terms when applying, for the manager named.
            crate::terms::record_acceptance(tx, manager.id, &app.form.terms_version, now).await?;
            let entry = AuditEntry::ok(
                actor,
                AuditAction::ApplicationApprove,
                format!("application:{id}"),
                json!({"facility_id": facility.id, "manager_user_id": manager.id,
                       "terms_version": app.form.terms_version}),
                Some(facility.id),
                Some(manager.id),
            );
            tx.audit(now, &entry).await?;
            Ok(Approval { facility, manager, code_id })
        })
        .await
    }

    /// Rejects a pending application with a reason.
    pub async fn reject_application(
        &self,
        id: i64,
        decided_by: UserId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<ApplicationRecord, StoreError> {
        self.write(async |tx| {
            decide(tx, id, "rejected", decided_by, Some(reason), now).await?;
            let entry = AuditEntry::ok(
                format!("user:{decided_by}"),
                AuditAction::ApplicationReject,
                format!("application:{id}"),
                json!({"reason": reason}),
                None,
                None,
            );
            tx.audit(now, &entry).await
        })
        .await?;
        self.application(id).await?.ok_or(StoreError::NotFound("application"))
    }
}

impl Store {
    /// Deletes the rejected applications decided before `decided_before`
    /// (the applicant's name, login ID, e-mail, phone and address with
    /// them); returns their ids. Each deletion is audited by id only.
    pub async fn purge_rejected_applications(
        &self,
        decided_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Vec<i64>, StoreError> {
        self.write(async |tx| {
            let rows =
                sqlx::query("delete from applications where status = 'rejected' and decided_at < $1 returning id")
                    .bind(secs(decided_before))
                    .fetch_all(&mut **tx)
                    .await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?;
            let entries: Vec<AuditEntry> = ids
                .iter()
                .map(|id| {
                    AuditEntry::ok(
                        "system:retention",
                        AuditAction::ApplicationPurge,
                        format!("application:{id}"),
                        json!({"decided_before": secs(decided_before)}),
                        None,
                        None,
                    )
                })
                .collect();
            tx.audit_all(now, &entries).await?;
            Ok(ids)
        })
        .await
    }
}

async fn insert_application(
    tx: &mut WriteTx,
    form: &ApplicationForm,
    status_token: &str,
    client: &str,
    now: OffsetDateTime,
) -> Result<i64, StoreError> {
    Ok(sqlx::query(
        "insert into applications (status_token, name, kind, address, department, manager_name, manager_login_id, \
         manager_email, manager_phone, purpose_attested, terms_version, client_addr, status, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, 'pending', $12, $12) returning id",
    )
    .bind(status_token)
    .bind(&form.name)
    .bind(form.kind.as_str())
    .bind(&form.address)
    .bind(form.department.as_deref())
    .bind(&form.manager_name)
    .bind(&form.manager_login_id)
    .bind(&form.manager_email)
    .bind(&form.manager_phone)
    .bind(&form.terms_version)
    .bind(client)
    .bind(secs(now))
    .fetch_one(&mut **tx)
    .await?
    .try_get("id")?)
}

async fn decide(
    tx: &mut WriteTx,
    id: i64,
    to: &'static str,
    by: UserId,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<ApplicationRecord, StoreError> {
    let row = sqlx::query(&format!("select {APPLICATION_COLUMNS} from applications where id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("application"))?;
    let app = application_from_row(&row)?;
    let changed = sqlx::query(
        "update applications set status = $1, decided_by = $2, decided_at = $3, decision_reason = $4, updated_at = $3 \
         where id = $5 and status = 'pending'",
    )
    .bind(to)
    .bind(by.0)
    .bind(secs(now))
    .bind(reason)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(connect_pki_domain::DomainError::InvalidTransition {
            from: if app.status == connect_pki_domain::ApplicationStatus::Approved { "approved" } else { "rejected" },
            to,
        }
        .into());
    }
    Ok(app)
}
