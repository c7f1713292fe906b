//! How the registration authority runs: values resolved by the server's
//! configuration at start, none read from files or the environment here.
//! `Settings::default` is where their defaults are written.

use crate::notify::NotifyConfig;
use crate::sightings::RecordSettings;
use crate::terms::Terms;

/// Operating settings of the registration authority.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an enrollment code handed over in person stays valid (72 h by default).
    pub enrollment_code_ttl: time::Duration,
    /// How long a facility manager's code, mailed by the city on its slip,
    /// stays valid (14 days by default, `mailed_code_hours`).
    pub mailed_code_ttl: time::Duration,
    /// The city's business calendar (Asia/Tokyo).
    pub calendar: connect_pki_domain::calendar::BusinessHours,
    /// Time a manager has to claim a report in business hours.
    pub escalation_sla: time::Duration,
    /// Time after which an unresolved hold becomes a revocation.
    pub hold_limit: time::Duration,
    /// Renewals a device may make per hour.
    pub renewals_per_hour: u32,
    /// How long a certificate replaced by a browser renewal keeps working
    /// when the new one is never used (`renewal_grace_days`).
    pub renewal_grace: time::Duration,
    /// How long device certificates live, installed by hand and managed
    /// (`device_lifetime_days`, `managed_lifetime_days`); a facility may
    /// have its own.
    pub lifetimes: connect_pki_domain::lifetime::Lifetimes,
    /// How long a device-management system's one-time challenge lasts
    /// (`mdm_challenge_minutes`).
    pub challenge_ttl: time::Duration,
    /// Where emergency notifications go.
    pub notify: NotifyConfig,
    /// Times a notification is tried (backing off 1 s, 2 s, 4 s … at most
    /// 10 min between tries) before it is given up and shown as failed.
    pub notification_attempts: u32,
    /// The terms of use (利用規約) in force.
    pub terms: Terms,
    /// How long a rejected application is kept before it is purged.
    pub rejected_application_retention: time::Duration,
    /// Days ahead the expiry lists look by default and the first expiry
    /// notice goes (`--expiry-notice-days`).
    pub expiry_notice_days: u32,
    /// What is recorded about relying parties and handshakes.
    pub relying: RecordSettings,
    /// A revoke, hold or release answers once every live instance has
    /// applied it (`instances::WAIT` at most), naming any that did not.
    pub every_instance: bool,
    /// 行政管理課's telephone, for every page, slip and e-mail that tells
    /// someone to call.
    pub city_desk: CityDesk,
    /// How often a facility's manager reviews its accounts (棚卸し), and how
    /// long a device goes unused before it is listed.
    pub review_period: time::Duration,
    pub review_unused_after: time::Duration,
    /// The departments outside facilities choose as their 担当課 (empty:
    /// the application takes the department as free text).
    pub departments: Vec<Department>,
}

pub use connect_pki_domain::city_desk::{CALL_THE_CITY, CityDesk, Department};

impl Settings {
    /// Whom an outside facility asks first, as its e-mails say it (its
    /// 担当課, with the contact the city's list gives); `None` for the
    /// city's own facilities.
    pub fn first_contact(&self, f: &connect_pki_store::FacilityRecord) -> Option<String> {
        if f.kind != connect_pki_domain::FacilityKind::External {
            return None;
        }
        let d = f.department.as_deref().filter(|d| !d.is_empty())?;
        Some(self.department(d).map_or_else(|| d.to_string(), Department::named))
    }

    /// The configured department named `name`, if any.
    pub fn department(&self, name: &str) -> Option<&Department> {
        self.departments.iter().find(|d| d.name == name)
    }
}

impl Default for Settings {
    fn default() -> Self {
        use connect_pki_domain::{application, enrollment, escalation, expiry};
        Self {
            enrollment_code_ttl: enrollment::DEFAULT_LIFETIME,
            mailed_code_ttl: enrollment::DEFAULT_MAILED_LIFETIME,
            calendar: connect_pki_domain::calendar::BusinessHours::default(),
            escalation_sla: escalation::DEFAULT_SLA,
            hold_limit: escalation::DEFAULT_HOLD_LIMIT,
            renewals_per_hour: enrollment::DEFAULT_RENEWALS_PER_HOUR,
            renewal_grace: connect_pki_domain::renewal::DEFAULT_GRACE,
            lifetimes: connect_pki_domain::lifetime::Lifetimes::default(),
            challenge_ttl: time::Duration::hours(1),
            notify: NotifyConfig::default(),
            notification_attempts: 8,
            terms: Terms::builtin(),
            rejected_application_retention: time::Duration::days(i64::from(
                application::DEFAULT_REJECTED_RETENTION_DAYS,
            )),
            expiry_notice_days: expiry::DEFAULT_WINDOW_DAYS,
            relying: RecordSettings::default(),
            every_instance: false,
            city_desk: CityDesk::default(),
            departments: Vec::new(),
            review_period: connect_pki_domain::user::DEFAULT_REVIEW_PERIOD,
            review_unused_after: connect_pki_domain::user::DEFAULT_UNUSED_AFTER,
        }
    }
}
