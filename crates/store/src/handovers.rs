//! Handovers of a browser renewal (`domain::renewal`): the certificate a
//! renewal replaced stays valid until the new one is first used (a
//! handshake on our listener, or a relying party's OCSP query answered
//! good) or the grace period ends; then it is superseded through the status
//! primitive like any other change. Waiting handovers are few (one per
//! device renewing from its browser), so the worker's look is a small read.

use serde_json::json;
use sqlx::Row;
use time::OffsetDateTime;

use connect_pki_domain::renewal::{HANDOVER, Pending, pending};
use connect_pki_domain::{CertStatus, DeviceId, Serial};

use crate::records::text;
use crate::status::{self, Request};
use crate::{Store, StoreError, WriteTx, instant, secs};

/// The handover a renewal leaves waiting: `new` takes over from `old`, at
/// the latest at `due`. A handover already waiting for `old` ends first: its
/// new certificate was handed out as a file that, by renewing again, the
/// person says they could not install, so it is superseded unused.
pub(crate) async fn wait(
    tx: &mut WriteTx,
    old: &Serial,
    new: &Serial,
    device: DeviceId,
    actor: &str,
    due: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let earlier = sqlx::query("delete from handovers where old_serial = $1 returning new_serial")
        .bind(old.to_hex())
        .fetch_all(&mut **tx)
        .await?;
    let earlier: Vec<Serial> = earlier.iter().map(|r| text(r, "new_serial")).collect::<Result<_, _>>()?;
    if !earlier.is_empty() {
        let detail = json!({"replaced_by": new, "because": "renewed again before it was installed"});
        status::apply(tx, &earlier, &Request::new(HANDOVER, actor, detail), now).await?;
    }
    sqlx::query(
        "insert into handovers (new_serial, old_serial, device_id, created_at, due_at) values ($1, $2, $3, $4, $5)",
    )
    .bind(new.to_hex())
    .bind(old.to_hex())
    .bind(device.0)
    .bind(secs(now))
    .bind(secs(due))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Browser renewals of `device` since `since` still waiting for their
/// handover (the others are counted by their superseded certificates).
pub(crate) async fn waiting_since(
    tx: &mut WriteTx,
    device: DeviceId,
    since: OffsetDateTime,
) -> Result<(i64, Option<OffsetDateTime>), StoreError> {
    let row = sqlx::query(
        "select count(*) as n, min(created_at) as oldest from handovers where device_id = $1 and created_at > $2",
    )
    .bind(device.0)
    .bind(secs(since))
    .fetch_one(&mut **tx)
    .await?;
    let oldest: Option<i64> = row.try_get("oldest")?;
    Ok((row.try_get("n")?, oldest.map(instant).transpose()?))
}

/// A waiting handover as the worker reads it.
struct Waiting {
    new: Serial,
    old: Serial,
    due: i64,
}

/// Whether `new` has been used: a handshake on our listener, or a relying
/// party told it is good.
const USED: &str = "(exists (select 1 from cert_handshakes h where h.serial = $1 and h.ok_count > 0) \
     or exists (select 1 from rp_ocsp o where o.serial = $1 and o.last_good_at is not null))";

async fn status_of(tx: &mut WriteTx, serial: &Serial) -> Result<CertStatus, StoreError> {
    let row = sqlx::query("select status from certificates where serial = $1")
        .bind(serial.to_hex())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("certificate"))?;
    text(&row, "status")
}

impl Store {
    /// Hands over every waiting renewal whose new certificate was used or
    /// whose grace period ended at `now`: the old certificate superseded,
    /// the row gone; a handover that can no longer happen is forgotten.
    /// Decided again under the writer lock, so of several instances each
    /// handover happens once. Returns the certificates superseded.
    pub async fn hand_over_renewals(&self, now: OffsetDateTime) -> Result<Vec<Serial>, StoreError> {
        let candidates = sqlx::query(&format!(
            "select new_serial, old_serial, due_at from handovers w where w.due_at <= $1 or {}",
            USED.replace("$1", "w.new_serial")
        ))
        .bind(secs(now))
        .fetch_all(&self.pool)
        .await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let waiting: Vec<Waiting> = candidates
            .iter()
            .map(|r| {
                Ok(Waiting { new: text(r, "new_serial")?, old: text(r, "old_serial")?, due: r.try_get("due_at")? })
            })
            .collect::<Result<_, StoreError>>()?;
        self.write(async |tx| {
            let mut superseded = Vec::new();
            for w in &waiting {
                let still = sqlx::query("select new_serial from handovers where new_serial = $1")
                    .bind(w.new.to_hex())
                    .fetch_optional(&mut **tx)
                    .await?;
                if still.is_none() {
                    continue;
                }
                let used = sqlx::query(&format!("select cast(case when {USED} then 1 else 0 end as bigint) as used"))
                    .bind(w.new.to_hex())
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get::<i64, _>("used")?
                    == 1;
                let (old, new) = (status_of(tx, &w.old).await?, status_of(tx, &w.new).await?);
                match pending(old, new, used, w.due <= secs(now)) {
                    Pending::Wait => continue,
                    Pending::Forget => {}
                    Pending::HandOver => {
                        let why = if used { "the new certificate was used" } else { "the grace period ended" };
                        let detail = json!({"new_serial": w.new, "because": why});
                        let req = Request::new(HANDOVER, "system:handover", detail);
                        superseded.extend(
                            status::apply(tx, std::slice::from_ref(&w.old), &req, now)
                                .await?
                                .into_iter()
                                .map(|t| t.serial),
                        );
                    }
                }
                sqlx::query("delete from handovers where new_serial = $1")
                    .bind(w.new.to_hex())
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(superseded)
        })
        .await
    }
}
