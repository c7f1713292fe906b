//! What the checks read: the database state after a batch, and the feed and
//! audit log followed as they grow.

use connect_pki_domain::AuditAction;
use std::collections::{BTreeMap, HashMap};

use super::checks::*;
use super::setup::*;
use super::world::*;
use connect_pki_domain::{CertStatus, Reason, Serial};
use connect_pki_store::{AuditFilter, Store};
use sqlx::{AnyPool, Row};

/// One certificate row as the database has it.
#[derive(Debug, Clone)]
pub(super) struct CertRow {
    pub(super) status: CertStatus,
    pub(super) reason: Option<Reason>,
    pub(super) revoked_at: i64,
    pub(super) device: i64,
    pub(super) user: i64,
}

/// What the checks of one batch read, after its rounds have all finished.
pub(super) struct Snapshot {
    pub(super) certs: BTreeMap<Serial, CertRow>,
    pub(super) index: HashMap<Serial, (CertStatus, Option<Reason>)>,
    pub(super) devices: HashMap<i64, String>,
    pub(super) users: HashMap<i64, String>,
    pub(super) facilities: HashMap<i64, String>,
    /// The certificates an open or claimed escalation holds, with its id.
    pub(super) covered: HashMap<Serial, i64>,
}

impl Snapshot {
    pub(super) async fn read(store: &Store, sql: &AnyPool, worlds: &[&World]) -> Self {
        let users = id_list(worlds.iter().map(|w| w.user.0));
        let certs = sqlx::query(&format!(
            "select c.serial, c.status, c.revocation_reason, coalesce(c.revoked_at, 0) as revoked_at, c.device_id, \
             d.user_id from certificates c join devices d on d.id = c.device_id where d.user_id in ({users})"
        ))
        .fetch_all(sql)
        .await
        .expect("certificate rows")
        .iter()
        .map(|row| {
            let text = |col: &str| row.try_get::<String, _>(col).expect(col);
            let reason: Option<String> = row.try_get("revocation_reason").expect("revocation_reason");
            let row = CertRow {
                status: text("status").parse().expect("status"),
                reason: reason.map(|r| r.parse().expect("reason")),
                revoked_at: row.try_get("revoked_at").expect("revoked_at"),
                device: row.try_get("device_id").expect("device_id"),
                user: row.try_get("user_id").expect("user_id"),
            };
            (text("serial").parse().expect("serial"), row)
        })
        .collect();
        let (_, entries) = store.certificate_index().await.expect("certificate index");
        let index = entries.into_iter().map(|e| (e.serial, (e.status, e.reason))).collect();
        let (mut devices, mut users, mut facilities) = (HashMap::new(), HashMap::new(), HashMap::new());
        let rows = sqlx::query(&format!(
            "select d.id as d_id, d.status as d_status, u.id as u_id, u.status as u_status, f.id as f_id, \
             f.status as f_status from devices d join users u on u.id = d.user_id \
             join facilities f on f.id = u.facility_id where d.id in ({})",
            id_list(worlds.iter().map(|w| w.device.0))
        ))
        .fetch_all(sql)
        .await
        .expect("device, user and facility statuses");
        for row in &rows {
            let id = |col: &str| row.try_get::<i64, _>(col).expect(col);
            let status = |col: &str| row.try_get::<String, _>(col).expect(col);
            devices.insert(id("d_id"), status("d_status"));
            users.insert(id("u_id"), status("u_status"));
            facilities.insert(id("f_id"), status("f_status"));
        }
        let covered = sqlx::query(&format!(
            "select h.serial, h.escalation_id from escalation_holds h join escalations e on e.id = h.escalation_id \
             join certificates c on c.serial = h.serial join devices d on d.id = c.device_id \
             where e.status in ('open', 'claimed') and d.user_id in ({})",
            id_list(worlds.iter().map(|w| w.user.0))
        ))
        .fetch_all(sql)
        .await
        .expect("escalation holds")
        .iter()
        .map(|row| {
            let serial = row.try_get::<String, _>("serial").expect("serial").parse().expect("serial");
            (serial, row.try_get::<i64, _>("escalation_id").expect("escalation_id"))
        })
        .collect();
        Snapshot { certs, index, devices, users, facilities, covered }
    }
}

impl Checker {
    pub(super) async fn follow(&mut self, store: &Store) {
        loop {
            let events = store.events_after(self.feed_cursor, PAGE).await.expect("feed");
            let Some(last) = events.last() else { break };
            self.feed_cursor = last.id;
            let full = events.len() == usize::try_from(PAGE).expect("page");
            for e in events {
                self.feed.entry(e.serial.clone()).or_default().push(e);
            }
            if !full {
                break;
            }
        }
        loop {
            let filter = AuditFilter { after_id: self.audit_cursor, limit: PAGE, ..AuditFilter::default() };
            let records = store.audit_page(&filter).await.expect("audit page");
            let Some(last) = records.last() else { break };
            self.audit_cursor = last.id;
            let full = records.len() == usize::try_from(PAGE).expect("page");
            for record in records {
                if record.entry.outcome != "ok" {
                    continue;
                }
                let (id, at) = (record.id, record.at.unix_timestamp());
                let to = match record.entry.action {
                    AuditAction::CertificateRevoke => Some(CertStatus::Revoked),
                    AuditAction::CertificateHold => Some(CertStatus::OnHold),
                    AuditAction::CertificateRelease => Some(CertStatus::Valid),
                    AuditAction::CertificateRenew => Some(CertStatus::Superseded),
                    _ => None,
                };
                if let Some(to) = to
                    && let Some(serial) = record.entry.target.strip_prefix("certificate:")
                {
                    let claim = Claim { id, at, to, via_escalation: false };
                    self.claims.entry(serial.to_string()).or_default().push(claim);
                }
                // A resolution as released names the certificates it released;
                // it is their record where no certificate.release row is written.
                if record.entry.action == AuditAction::EscalationResolve && record.entry.detail["outcome"] == "released"
                {
                    for serial in record.entry.detail["certificates"].as_array().into_iter().flatten() {
                        let serial = serial.as_str().expect("serial in an escalation record").to_string();
                        let claim = Claim { id, at, to: CertStatus::Valid, via_escalation: true };
                        self.claims.entry(serial).or_default().push(claim);
                    }
                }
                self.audit.entry(record.entry.target.clone()).or_default().push(record);
            }
            if !full {
                break;
            }
        }
    }
}
