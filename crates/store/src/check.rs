//! `connect-pki check`: certificates still in force that the lifecycle says
//! should not be. Which ones offend is the domain's rule
//! (`certificate::offence`); the store only gathers the facts.

use sqlx::Row;

use connect_pki_domain::certificate::{self, Offence};
use connect_pki_domain::{CertStatus, Serial};

use crate::records::{quoted, text};
use crate::{Store, StoreError};

/// A valid certificate that should not be (`connect-pki check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offender {
    pub serial: Serial,
    pub why: String,
}

impl Store {
    /// Certificates in force that should not be: of a retired or deleted
    /// user, a closed facility, or a device reported lost; valid ones of a
    /// suspended facility.
    pub async fn consistency_offenders(&self) -> Result<Vec<Offender>, StoreError> {
        let in_force = CertStatus::ALL.iter().filter(|s| certificate::in_force(**s)).map(|s| s.as_str());
        let rows = sqlx::query(&format!(
            "select c.serial, c.status, u.status as u_status, f.status as f_status, d.status as d_status, \
             u.id as u_id, f.id as f_id, d.id as d_id \
             from certificates c join devices d on d.id = c.device_id join users u on u.id = d.user_id \
             join facilities f on f.id = u.facility_id where c.status in ({}) order by c.serial",
            quoted(in_force)
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let device_lost = r.try_get::<String, _>("d_status")? == "lost";
            let offence =
                certificate::offence(text(r, "status")?, text(r, "f_status")?, device_lost, text(r, "u_status")?);
            let why = match offence {
                None => continue,
                Some(Offence::FacilityClosed) => format!("facility {} is closed", r.try_get::<i64, _>("f_id")?),
                Some(Offence::DeviceLost) => format!("device {} was reported lost", r.try_get::<i64, _>("d_id")?),
                Some(Offence::HolderGone(status)) => format!("user {} is {status}", r.try_get::<i64, _>("u_id")?),
                Some(Offence::FacilitySuspended) => {
                    format!("facility {} is suspended", r.try_get::<i64, _>("f_id")?)
                }
            };
            out.push(Offender { serial: text(r, "serial")?, why });
        }
        Ok(out)
    }
}
