//! Expiry: the certificates in force that run out soon, with the notices
//! already sent about them, and the once-only record of a notice, written
//! with its e-mails in one transaction.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::{AuditAction, CertStatus, DeviceId, FacilityId, Serial, UserId, certificate, expiry};

use crate::audit::AuditEntry;
use crate::notifications::{Target, enqueue};
use crate::records::{CertificateRecord, FacilityRecord, UserRecord, quoted, text};
use crate::{Store, StoreError, secs};

/// A device certificate in force that runs out soon, with whose it is and
/// the notice thresholds already announced for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCertificate {
    pub facility: FacilityRecord,
    pub user: UserRecord,
    pub device: DeviceId,
    pub device_label: String,
    pub certificate: CertificateRecord,
    /// Thresholds (days) announced already.
    pub notices: Vec<u32>,
}

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeSubject {
    /// A device certificate (in `certificates`).
    Device,
    /// The root CA's certificate.
    Root,
    /// The issuing CA's certificate.
    Issuing,
}

impl NoticeSubject {
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeSubject::Device => "device",
            NoticeSubject::Root => "root",
            NoticeSubject::Issuing => "issuing",
        }
    }
}

/// One notice to record and send, if it is still due when the writer lock
/// is held.
#[derive(Debug, Clone)]
pub struct ExpiryNotice<'a> {
    pub serial: &'a Serial,
    pub subject: NoticeSubject,
    /// The CA certificate's end; a device certificate's is read under the lock.
    pub not_after: OffsetDateTime,
    /// The threshold the caller found due.
    pub threshold: u32,
    /// Every threshold in use (`expiry::thresholds`).
    pub thresholds: &'a [u32],
    pub targets: &'a [Target],
    pub payload: &'a str,
}

/// Who records a notice in the audit log.
const ACTOR: &str = "system:expiry";

impl Store {
    /// Device certificates in force running out after `now` and no later
    /// than `until`, of one facility or all, soonest first. Managed devices
    /// are left out: they renew themselves at half-life, and their short
    /// life would put every one of them on the list all the time.
    pub async fn expiring_certificates(
        &self,
        facility: Option<FacilityId>,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<ExpiringCertificate>, StoreError> {
        let in_force = CertStatus::ALL.iter().filter(|s| certificate::in_force(**s)).map(|s| s.as_str());
        let of_facility = if facility.is_some() { "and u.facility_id = $3" } else { "" };
        let sql = format!(
            "select {}, {}, {}, d.id as d_id, d.label as d_label, n.threshold_days as n_threshold \
             from certificates c join devices d on d.id = c.device_id join users u on u.id = d.user_id \
             join facilities f on f.id = u.facility_id left join expiry_notices n on n.serial = c.serial \
             where c.status in ({}) and c.not_after > $1 and c.not_after <= $2 and d.managed = 0 {of_facility} \
             order by c.not_after, c.serial, n.threshold_days",
            FacilityRecord::COLUMNS,
            UserRecord::COLUMNS,
            CertificateRecord::COLUMNS,
            quoted(in_force),
        );
        let mut query = sqlx::query(&sql).bind(secs(now)).bind(secs(until));
        if let Some(f) = facility {
            query = query.bind(f.0);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut out: Vec<ExpiringCertificate> = Vec::new();
        for row in &rows {
            let serial: Serial = text(row, "c_serial")?;
            if out.last().is_none_or(|e| e.certificate.serial != serial) {
                out.push(ExpiringCertificate {
                    facility: FacilityRecord::from_row(row)?,
                    user: UserRecord::from_row(row)?,
                    device: DeviceId(row.try_get("d_id")?),
                    device_label: row.try_get("d_label")?,
                    certificate: CertificateRecord::from_row(row)?,
                    notices: Vec::new(),
                });
            }
            if let (Some(e), Some(t)) = (out.last_mut(), row.try_get::<Option<i64>, _>("n_threshold")?) {
                e.notices.push(threshold(t)?);
            }
        }
        Ok(out)
    }

    /// How many device certificates in force run out after `now` and no
    /// later than each of `untils` (for /metrics, without reading them).
    pub async fn count_expiring(&self, now: OffsetDateTime, untils: &[OffsetDateTime]) -> Result<Vec<i64>, StoreError> {
        let in_force = CertStatus::ALL.iter().filter(|s| certificate::in_force(**s)).map(|s| s.as_str());
        let sql = format!(
            "select count(*) as n from certificates c where c.status in ({}) and c.not_after > $1 and c.not_after <= $2",
            quoted(in_force)
        );
        let mut out = Vec::with_capacity(untils.len());
        for until in untils {
            let row = sqlx::query(&sql).bind(secs(now)).bind(secs(*until)).fetch_one(&self.pool).await?;
            out.push(row.try_get("n")?);
        }
        Ok(out)
    }

    /// The thresholds already announced for the certificate `serial`.
    pub async fn expiry_notices(&self, serial: &Serial) -> Result<Vec<u32>, StoreError> {
        sent(&mut *self.pool.acquire().await?, serial).await
    }

    /// Records `notice` and queues its e-mails, with an audit record, in
    /// one transaction — if, read under the writer lock, its threshold is
    /// still the one due (`expiry::due_notice`): of several instances or
    /// ticks finding the same notice due, one sends it and the others find
    /// it sent. Returns whether this call sent it. The primary key
    /// (serial, threshold) stands behind that check.
    pub async fn record_expiry_notice(
        &self,
        notice: &ExpiryNotice<'_>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.write(async |tx| {
            let (status, not_after, facility, user) = match notice.subject {
                NoticeSubject::Device => {
                    let row = sqlx::query(
                        "select c.status, c.not_after, u.id as u_id, u.facility_id from certificates c \
                         join devices d on d.id = c.device_id join users u on u.id = d.user_id where c.serial = $1",
                    )
                    .bind(notice.serial.to_hex())
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or(StoreError::NotFound("certificate"))?;
                    (
                        text::<CertStatus>(&row, "status")?,
                        crate::instant(row.try_get("not_after")?)?,
                        Some(FacilityId(row.try_get("facility_id")?)),
                        Some(UserId(row.try_get("u_id")?)),
                    )
                }
                // A CA certificate in use is in force until it runs out.
                NoticeSubject::Root | NoticeSubject::Issuing => (CertStatus::Valid, notice.not_after, None, None),
            };
            let already = sent(tx, notice.serial).await?;
            if expiry::due_notice(status, not_after, now, notice.thresholds, &already) != Some(notice.threshold) {
                return Ok(false);
            }
            sqlx::query(
                "insert into expiry_notices (serial, threshold_days, subject, not_after, sent_at) values ($1, $2, $3, $4, $5)",
            )
            .bind(notice.serial.to_hex())
            .bind(i64::from(notice.threshold))
            .bind(notice.subject.as_str())
            .bind(secs(not_after))
            .bind(secs(now))
            .execute(&mut **tx)
            .await?;
            enqueue(tx, None, "expiring", notice.targets, notice.payload, now).await?;
            let entry = AuditEntry::ok(
                ACTOR,
                AuditAction::CertificateExpiryNotice,
                format!("certificate:{}", notice.serial.to_hex()),
                json!({
                    "certificate": notice.subject.as_str(),
                    "threshold_days": notice.threshold,
                    "not_after": secs(not_after),
                    "recipients": notice.targets.len(),
                }),
                facility,
                user,
            );
            tx.audit(now, &entry).await?;
            Ok(true)
        })
        .await
    }

    /// E-mail addresses of 行政管理課's active users.
    pub async fn admin_division_emails(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "select email from users where role = 'admin_division' and status = 'active' \
             and email is not null and email <> '' order by id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("email")?)).collect()
    }
}

/// The thresholds announced for `serial`, read on `conn`.
async fn sent(conn: &mut sqlx::AnyConnection, serial: &Serial) -> Result<Vec<u32>, StoreError> {
    let rows = sqlx::query("select threshold_days from expiry_notices where serial = $1 order by threshold_days")
        .bind(serial.to_hex())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| threshold(r.try_get("threshold_days")?)).collect()
}

fn threshold(days: i64) -> Result<u32, StoreError> {
    u32::try_from(days).map_err(|_| StoreError::Corrupt(format!("expiry_notices.threshold_days {days}")))
}
