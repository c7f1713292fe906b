//! Settings of `serve`, merged once at start: built-in defaults, then
//! `<data-dir>/config.toml`, then environment variables and flags (the CLI
//! merges those two through clap). The rest of the code sees typed values only.
//!
//! This module holds what config.toml and the flags may say ([`FileConfig`]),
//! the resolved settings ([`ServeConfig`]) and the one place their defaults
//! are written, side by side, so that a new setting is a key here and a
//! line in `resolve`. `tables.rs` holds config.toml's tables; `values.rs`
//! turns text into typed values.

mod tables;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub(crate) use connect_pki_responder::FeedSettings;
use tables::NotificationsConfig;
pub use tables::{CalendarConfig, Pkcs11Config};
pub(crate) use values::SQLITE_FILE;
pub use values::{DEFAULT_PUBLIC_URL, default_database_url, sqlite_path};
use values::{UrlKind, address_or_network, public_url, web_url};

/// The settings file in the data directory.
pub(crate) const CONFIG_FILE: &str = "config.toml";

/// The keys `<data-dir>/config.toml` may hold. Unknown keys are refused so a
/// misspelt setting is noticed instead of silently ignored.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_addr: Option<SocketAddr>,
    /// Lifetime of enrollment codes, in hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) enrollment_code_hours: Option<u32>,
    /// Hours a facility manager's code mailed by the city stays valid (default 336).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mailed_code_hours: Option<u32>,
    /// CRL nextUpdate, in hours after thisUpdate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) crl_next_update_hours: Option<u32>,
    /// OCSP response validity, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ocsp_max_age_seconds: Option<u32>,
    /// Public submissions per client address and minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// OCSP requests per minute from a client no relying-party name covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ocsp_rate_limit_per_minute: Option<u32>,
    /// The city's business calendar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarConfig>,
    /// Minutes a manager has to claim an emergency in business hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) escalation_sla_minutes: Option<u32>,
    /// Hours after which an unresolved hold becomes a revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hold_limit_hours: Option<u32>,
    /// Renewals a device may make per hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) renewals_per_hour: Option<u32>,
    /// Days a certificate replaced by a browser renewal keeps working when
    /// the new one is never used (1 to 30; default 7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) renewal_grace_days: Option<u32>,
    /// Device certificates installed by hand, and managed ones (EST).
    pub(crate) device_lifetime_days: Option<u32>,
    pub(crate) managed_lifetime_days: Option<u32>,
    /// A device-management system's one-time challenge.
    pub(crate) mdm_challenge_minutes: Option<u32>,
    /// Days between a facility's account reviews (棚卸し; default 91).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) review_period_days: Option<u32>,
    /// Days a device goes unused before the review lists it (default 90).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) review_unused_days: Option<u32>,
    /// Where emergency notifications go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) notifications: Option<NotificationsConfig>,
    /// Times a notification is tried before it is given up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) notification_attempts: Option<u32>,
    /// PostgreSQL: LISTEN for other instances' revocations (polling stays as
    /// the fallback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_listen: Option<bool>,
    /// Seconds without reading the revocation feed before failing closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) feed_max_lag_seconds: Option<u32>,
    /// A revoke, hold or release answers once every live instance applied it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) revoke_waits_for_every_instance: Option<bool>,
    /// Seconds between comparisons of the revocation index with the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reconcile_seconds: Option<u32>,
    /// Connections each listener serves at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Connections one source may hold without a client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_connections_per_source: Option<u32>,
    /// Seconds after which a connection is asked to finish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_connection_age_seconds: Option<u32>,
    /// New HTTPS connections one source may open a minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) new_connections_per_source_per_minute: Option<u32>,
    /// Seconds a client has to send a request's headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) header_timeout_seconds: Option<u32>,
    /// Seconds a silent connection stays open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) idle_timeout_seconds: Option<u32>,
    /// Also accept TLS 1.2 on the mTLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_tls12: Option<bool>,
    /// Seconds between checkpoints of the audit log's head (written only when it moved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audit_checkpoint_seconds: Option<u32>,
    /// Seconds between runs of the consistency check inside the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) consistency_check_seconds: Option<u32>,
    /// Days a rejected application is kept before it is purged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rejected_application_days: Option<u32>,
    /// Seconds between checks whether the OCSP signer or TLS certificate is due for renewal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) renewal_check_seconds: Option<u32>,
    /// Seconds between looks for certificates running out (expiry notices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expiry_check_seconds: Option<u32>,
    /// Days before a certificate runs out that it is listed and first announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expiry_notice_days: Option<u32>,
    /// 行政管理課's telephone number, on every page, slip and e-mail that says to call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) city_phone: Option<String>,
    /// When that number answers, e.g. 「平日 8:30〜17:15」.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) city_phone_hours: Option<String>,
    /// PEM certificate chain of the HTTPS listener, instead of the one from our CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_cert_file: Option<PathBuf>,
    /// PEM private key that goes with `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_key_file: Option<PathBuf>,
    /// The HTTPS address the plain listener sends people to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) https_url: Option<String>,
    /// Reverse proxies (addresses or networks) whose X-Forwarded-For and
    /// X-Forwarded-Proto are believed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Names of relying parties by network: `name = ["10.1.0.0/16"]`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) relying_parties: std::collections::BTreeMap<String, Vec<String>>,
    /// The departments outside facilities choose as their 担当課:
    /// `[[departments]]` with `name` and `contact`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) departments: Vec<connect_pki_domain::city_desk::Department>,
    /// Record what each relying party asks (OCSP, CRLs) and each certificate's handshakes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) relying_party_recording: Option<bool>,
    /// Seconds between writes of that record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) relying_party_flush_seconds: Option<u32>,
    /// Days that record is kept after a relying party's last question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) relying_party_retention_days: Option<u32>,
    /// Rows of that record kept for clients no name covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) relying_party_unnamed_rows: Option<u32>,
    /// The PKCS#11 token holding the CA keys (set by `init --pkcs11-module`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Config>,
}

connect_pki_domain::redacted_debug!(FileConfig { public_url, public_addr, api_addr, enrollment_code_hours, mailed_code_hours, crl_next_update_hours, ocsp_max_age_seconds, rate_limit_per_minute, ocsp_rate_limit_per_minute, calendar, escalation_sla_minutes, hold_limit_hours, notifications, notification_attempts, feed_listen, feed_max_lag_seconds, revoke_waits_for_every_instance, reconcile_seconds, max_connections, max_connections_per_source, max_connection_age_seconds, new_connections_per_source_per_minute, header_timeout_seconds, idle_timeout_seconds, allow_tls12, renewals_per_hour, renewal_grace_days, device_lifetime_days, managed_lifetime_days, mdm_challenge_minutes, review_period_days, review_unused_days, audit_checkpoint_seconds, consistency_check_seconds, renewal_check_seconds, rejected_application_days, expiry_check_seconds, expiry_notice_days, city_phone, city_phone_hours, tls_cert_file, tls_key_file, https_url, trusted_proxies, relying_parties, departments, relying_party_recording, relying_party_flush_seconds, relying_party_retention_days, relying_party_unnamed_rows, pkcs11; database_url });

impl FileConfig {
    /// `self`'s keys laid over `under`'s: a key given here wins, tables and
    /// lists included.
    pub fn over(self, under: FileConfig) -> anyhow::Result<FileConfig> {
        let mut merged = toml::Table::try_from(under)?;
        merged.extend(toml::Table::try_from(self)?);
        Ok(merged.try_into()?)
    }

    /// One `key=value` (`--set`) as a config.toml line would give it: the
    /// value in TOML (`30`, `true`, `[\"10.0.0.0/8\"]`), or else as text.
    pub fn setting(assignment: &str) -> anyhow::Result<FileConfig> {
        let refused = |why: &dyn std::fmt::Display| anyhow::anyhow!("--set {assignment:?}: {why}");
        let (key, text) = assignment.split_once('=').ok_or_else(|| refused(&"write it as key=value"))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(refused(&"the key is one of config.toml's, e.g. expiry_notice_days"));
        }
        // One TOML value (not a line that could set other keys too), or else text.
        let value = match toml::from_str::<toml::Table>(&format!("v = {text}")) {
            Ok(mut t) if t.len() == 1 => t.remove("v").unwrap_or_else(|| toml::Value::String(text.into())),
            _ => toml::Value::String(text.into()),
        };
        toml::Value::Table(toml::Table::from_iter([(key.to_string(), value)])).try_into().map_err(|e| refused(&e))
    }

    /// Reads `<data_dir>/config.toml`; a missing file is an empty config.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Everything `serve` needs, fully resolved. [`ServeConfig::default`] is the
/// one place where defaults are written; [`ServeConfig::resolve`] lays
/// config.toml and then the flags and environment over them.
#[derive(Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Where relying parties fetch the CRL, OCSP and CA certificates; the
    /// certificates name it.
    pub public_url: url::Url,
    pub public_addr: SocketAddr,
    pub api_addr: SocketAddr,
    /// Where to write `{"public_addr", "api_addr"}` once both listeners are
    /// bound (useful with port 0).
    pub ready_file: Option<PathBuf>,
    /// nextUpdate − thisUpdate of the CRL.
    pub crl_validity: time::Duration,
    /// Validity of OCSP responses: the longest a relying party may keep
    /// seeing `good` after a revocation.
    pub ocsp_validity: time::Duration,
    /// Public submissions per client address and minute.
    pub rate_limit_per_minute: u32,
    /// OCSP requests a minute from one client (IPv4 address, IPv6 /64) no
    /// relying-party name covers; past it, `tryLater`.
    pub ocsp_rate_limit_per_minute: u32,
    /// How the revocation feed is followed (the listen URL is filled in
    /// from `database_url` when `feed_listen` is on and it is PostgreSQL).
    pub feed: FeedSettings,
    pub feed_listen: bool,
    /// Connection cap and timeouts of both listeners.
    pub limits: Limits,
    /// Accept TLS 1.2 on the mTLS listener too. Off by default: TLS 1.2 sends
    /// the client certificate, and with it the user's identity, in clear.
    pub allow_tls12: bool,
    /// Checkpoints of the audit log's head outside the database (`None`: none).
    pub audit_checkpoints: Option<CheckpointSettings>,
    /// The HTTPS listener's certificate, the way to it from the plain
    /// listener, and the proxies in front of either.
    pub https: HttpsSettings,
    /// How often the service runs `connect-pki check` on itself (`None`: never).
    pub consistency_check: Option<std::time::Duration>,
    /// How often the service looks whether its OCSP signer or TLS
    /// certificate is due for renewal (it also looks at start); `None`:
    /// never (the in-process tests that share one data directory).
    pub renewal_check: Option<std::time::Duration>,
    /// Keep each CRL in `<data-dir>/crl/` and compare the database with it
    /// at start (`crate::backup`); off only where several services share one
    /// data directory (the in-process tests).
    pub keep_crl: bool,
    /// How often the service looks for certificates to announce as running
    /// out (`None`: never; the lists and /metrics work either way).
    pub expiry_check: Option<std::time::Duration>,
    /// The registration authority's settings; its terms of use are read
    /// from the data directory at start.
    pub ra: connect_pki_ra::Settings,
}

impl ServeConfig {
    /// The defaults for `data_dir`: its SQLite database, audit checkpoints
    /// beside it.
    pub fn default_for(data_dir: &Path) -> Self {
        let secs = |s| Some(std::time::Duration::from_secs(s));
        Self {
            data_dir: data_dir.to_path_buf(),
            database_url: default_database_url(data_dir),
            public_url: url::Url::parse(DEFAULT_PUBLIC_URL).expect("the default public URL is a URL"),
            // The public HTTP listener and the mTLS listener (DESIGN §5).
            public_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
            ready_file: None,
            crl_validity: time::Duration::hours(24),
            ocsp_validity: time::Duration::seconds(60),
            rate_limit_per_minute: 30,
            ocsp_rate_limit_per_minute: 1200,
            feed: FeedSettings::default(),
            feed_listen: true,
            limits: Limits::default(),
            allow_tls12: false,
            audit_checkpoints: Some(CheckpointSettings {
                dir: data_dir.to_path_buf(),
                every: std::time::Duration::from_secs(300),
            }),
            https: HttpsSettings::default(),
            consistency_check: secs(600),
            renewal_check: secs(3600),
            keep_crl: true,
            expiry_check: secs(3600),
            ra: connect_pki_ra::Settings::default(),
        }
    }

    /// The defaults, then `file` (config.toml), then `flags` (the command
    /// line and environment, in the same keys): the last one given wins.
    pub fn resolve(data_dir: &Path, file: FileConfig, flags: FileConfig) -> anyhow::Result<Self> {
        let f = flags.over(file)?;
        let mut c = Self::default_for(data_dir);
        lifetimes(&mut c.ra, &f)?;
        let (secs, std_secs) =
            (|s: u32| time::Duration::seconds(i64::from(s)), |s: u32| std::time::Duration::from_secs(u64::from(s)));
        let hours = |h: u32| time::Duration::hours(i64::from(h));
        let days = |d: u32| time::Duration::days(i64::from(d));
        set(&mut c.database_url, f.database_url);
        set(&mut c.public_url, f.public_url.as_deref().map(public_url).transpose()?);
        set(&mut c.public_addr, f.public_addr);
        set(&mut c.api_addr, f.api_addr);
        set(&mut c.crl_validity, f.crl_next_update_hours.map(hours));
        set(&mut c.ocsp_validity, f.ocsp_max_age_seconds.map(secs));
        set(&mut c.rate_limit_per_minute, f.rate_limit_per_minute);
        set(&mut c.ocsp_rate_limit_per_minute, f.ocsp_rate_limit_per_minute);
        set(&mut c.feed_listen, f.feed_listen);
        set(&mut c.feed.max_lag, f.feed_max_lag_seconds.map(std_secs));
        set(&mut c.feed.reconcile_every, f.reconcile_seconds.map(std_secs));
        set(&mut c.ra.every_instance, f.revoke_waits_for_every_instance);
        if c.ra.every_instance {
            // An instance a revoke stopped waiting for has not read the feed
            // for that long: it fails closed, as the answer says.
            c.feed.max_lag = c.feed.max_lag.min(connect_pki_ra::instances::WAIT);
        }
        set(&mut c.limits.max_connections, f.max_connections.map(|n| n as usize));
        set(&mut c.limits.max_connections_per_source, f.max_connections_per_source.map(|n| n as usize));
        set(&mut c.limits.max_connection_age, f.max_connection_age_seconds.map(std_secs));
        set(&mut c.limits.new_connections_per_source_per_minute, f.new_connections_per_source_per_minute);
        set(&mut c.limits.header_read_timeout, f.header_timeout_seconds.map(std_secs));
        set(&mut c.limits.idle_timeout, f.idle_timeout_seconds.map(std_secs));
        set(&mut c.allow_tls12, f.allow_tls12);
        if let (Some(cp), Some(s)) = (&mut c.audit_checkpoints, f.audit_checkpoint_seconds) {
            cp.every = std_secs(s);
        }
        c.https.cert_files = match (f.tls_cert_file, f.tls_key_file) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("tls_cert_file and tls_key_file go together: set both or neither"),
        };
        c.https.url = f.https_url.map(|u| web_url("https_url", &u, UrlKind::HttpsOrigin)).transpose()?;
        c.https.trusted_proxies =
            f.trusted_proxies.iter().map(|p| address_or_network(p)).collect::<anyhow::Result<_>>()?;
        set(&mut c.consistency_check, f.consistency_check_seconds.map(|s| Some(std_secs(s))));
        set(&mut c.renewal_check, f.renewal_check_seconds.map(|s| Some(std_secs(s))));
        set(&mut c.expiry_check, f.expiry_check_seconds.map(|s| Some(std_secs(s))));
        let ra = &mut c.ra;
        set(&mut ra.enrollment_code_ttl, f.enrollment_code_hours.map(hours));
        set(&mut ra.calendar, f.calendar.map(|cal| cal.business_hours()).transpose()?);
        set(&mut ra.escalation_sla, f.escalation_sla_minutes.map(|m| time::Duration::minutes(i64::from(m))));
        set(&mut ra.hold_limit, f.hold_limit_hours.map(hours));
        set(&mut ra.renewals_per_hour, f.renewals_per_hour);
        ra.notify = f.notifications.unwrap_or_default().resolve(&ra.notify)?;
        anyhow::ensure!(
            f.notification_attempts.is_none_or(|n| (1..=100).contains(&n)),
            "notification_attempts: 1 to 100"
        );
        set(&mut ra.notification_attempts, f.notification_attempts);
        set(&mut ra.rejected_application_retention, f.rejected_application_days.map(days));
        if let Some(d) = f.expiry_notice_days {
            connect_pki_domain::expiry::window(d).context("expiry_notice_days in config.toml")?;
            ra.expiry_notice_days = d;
        }
        ra.departments = connect_pki_domain::city_desk::departments(f.departments).map_err(|e| anyhow::anyhow!(e))?;
        ra.city_desk = connect_pki_ra::settings::CityDesk::new(f.city_phone, f.city_phone_hours)
            .map_err(|e| anyhow::anyhow!("{e} (config.toml or --city-phone)"))?;
        set(&mut ra.relying.enabled, f.relying_party_recording);
        set(&mut ra.relying.flush_every, f.relying_party_flush_seconds.map(std_secs));
        set(&mut ra.relying.retention, f.relying_party_retention_days.map(days));
        set(&mut ra.relying.unnamed_rows, f.relying_party_unnamed_rows.map(u64::from));
        ra.relying.names =
            connect_pki_ra::sightings::Names::parse(&f.relying_parties).context("relying_parties in config.toml")?;
        Ok(c)
    }
}

/// The lifetimes of a person's things: a mailed code, a renewal's grace,
/// the account review's period and what counts as unused.
fn lifetimes(ra: &mut connect_pki_ra::Settings, f: &FileConfig) -> anyhow::Result<()> {
    let (hours, days) = (|h: u32| time::Duration::hours(i64::from(h)), |d: u32| time::Duration::days(i64::from(d)));
    anyhow::ensure!(f.mailed_code_hours.is_none_or(|h| (1..=8760).contains(&h)), "mailed_code_hours: 1 to 8760");
    set(&mut ra.mailed_code_ttl, f.mailed_code_hours.map(hours));
    let max_grace = connect_pki_domain::renewal::MAX_GRACE_DAYS;
    anyhow::ensure!(
        f.renewal_grace_days.is_none_or(|d| (1..=max_grace).contains(&d)),
        "renewal_grace_days: 1 to {max_grace}"
    );
    set(&mut ra.renewal_grace, f.renewal_grace_days.map(days));
    let max = connect_pki_domain::lifetime::MAX_DAYS;
    anyhow::ensure!(
        [f.device_lifetime_days, f.managed_lifetime_days].iter().flatten().all(|d| (1..=max).contains(d)),
        "device_lifetime_days, managed_lifetime_days: 1 to {max}"
    );
    set(&mut ra.lifetimes.by_hand_days, f.device_lifetime_days);
    set(&mut ra.lifetimes.managed_days, f.managed_lifetime_days);
    anyhow::ensure!(
        f.mdm_challenge_minutes.is_none_or(|m| (1..=1440).contains(&m)),
        "mdm_challenge_minutes: 1 to 1440"
    );
    set(&mut ra.challenge_ttl, f.mdm_challenge_minutes.map(|m| time::Duration::minutes(i64::from(m))));
    anyhow::ensure!(
        [f.review_period_days, f.review_unused_days].iter().flatten().all(|d| (1..=730).contains(d)),
        "review_period_days, review_unused_days: 1 to 730"
    );
    set(&mut ra.review_period, f.review_period_days.map(days));
    set(&mut ra.review_unused_after, f.review_unused_days.map(days));
    Ok(())
}

/// Replaces `slot` with a value that was given.
fn set<T>(slot: &mut T, given: Option<T>) {
    if let Some(v) = given {
        *slot = v;
    }
}

/// Where secrets travel: HTTPS, with which certificate, behind which proxies.
#[derive(Debug, Clone, Default)]
pub struct HttpsSettings {
    /// (certificate chain, key) PEM files an operator supplies, e.g. from
    /// the city's public CA; `None`: the server certificate from our CA.
    pub cert_files: Option<(PathBuf, PathBuf)>,
    /// The address the plain listener redirects pages to; `None`: the host
    /// the browser asked for, on the HTTPS listener's port.
    pub url: Option<url::Url>,
    /// Addresses (as /32 or /128) and networks of trusted reverse proxies.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

connect_pki_domain::redacted_debug!(ServeConfig { data_dir, public_url, public_addr, api_addr, ready_file, crl_validity, ocsp_validity, rate_limit_per_minute, ocsp_rate_limit_per_minute, feed, feed_listen, limits, allow_tls12, audit_checkpoints, https, consistency_check, renewal_check, keep_crl, expiry_check, ra; database_url });

/// Where checkpoints go and how often.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// The directory holding the checkpoint file and the key (the data directory).
    pub dir: PathBuf,
    pub every: std::time::Duration,
}

/// Connection cap and timeouts of one listener (`net::listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; when all are taken, the longest-idle
    /// one without a client certificate makes room, or the new one is closed.
    pub max_connections: usize,
    /// Connections without one of our client certificates that one source
    /// (an IPv4 address, an IPv6 /64) may hold at once.
    pub max_connections_per_source: usize,
    /// Age at which a connection is asked to finish (HTTP/2 GOAWAY), and
    /// closed 10 s later.
    pub max_connection_age: std::time::Duration,
    /// New connections one source may open on the HTTPS listener a minute
    /// (each costs a TLS handshake), in bursts of a fifth of it.
    pub new_connections_per_source_per_minute: u32,
    /// Time a client has to send a request's headers once it starts one.
    pub header_read_timeout: std::time::Duration,
    /// Time a connection may stay without a request being answered (PINGs
    /// and other bytes do not count), and without any byte moving while one
    /// is. A connection that never sends a request gets the header timeout.
    pub idle_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_source: 64,
            max_connection_age: std::time::Duration::from_secs(600),
            new_connections_per_source_per_minute: 600,
            header_read_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> FileConfig {
        toml::from_str(text).expect("valid config.toml")
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let dir = Path::new("/srv/pki");
        let none = ServeConfig::resolve(dir, FileConfig::default(), FileConfig::default()).expect("defaults");
        assert_eq!(none.rate_limit_per_minute, 30);
        assert_eq!(none.ra.expiry_notice_days, connect_pki_domain::expiry::DEFAULT_WINDOW_DAYS);
        assert_eq!(none.database_url, default_database_url(dir));
        assert_eq!(none.audit_checkpoints.map(|c| c.dir), Some(dir.to_path_buf()));
        let file = toml("rate_limit_per_minute = 5\nexpiry_notice_days = 20\ntrusted_proxies = ['10.0.0.1']");
        let from_file = ServeConfig::resolve(dir, file.clone(), FileConfig::default()).expect("file");
        assert_eq!((from_file.rate_limit_per_minute, from_file.ra.expiry_notice_days), (5, 20));
        let flags = toml("rate_limit_per_minute = 7");
        let both = ServeConfig::resolve(dir, file, flags).expect("both");
        assert_eq!((both.rate_limit_per_minute, both.ra.expiry_notice_days), (7, 20));
        let proxy: ipnet::IpNet = "10.0.0.1/32".parse().expect("a network");
        assert_eq!(both.https.trusted_proxies, vec![proxy], "a list no flag gave stays the file's");
        for bad in ["proxy.example", "10.0.0.0/33"] {
            let config = toml(&format!("trusted_proxies = ['{bad}']"));
            let refused = ServeConfig::resolve(dir, config, FileConfig::default());
            assert!(refused.is_err_and(|e| e.to_string().contains(bad)), "trusted proxy {bad} accepted at load");
        }
        let bad = ServeConfig::resolve(dir, toml("expiry_notice_days = 0"), FileConfig::default());
        assert!(bad.is_err(), "a window of 0 days is refused");
        let half = ServeConfig::resolve(dir, toml("tls_cert_file = '/c.pem'"), FileConfig::default());
        assert!(half.is_err(), "a certificate without its key is refused");
        let desk = toml("city_phone = '03-1234-5678'\ncity_phone_hours = '平日 8:30〜17:15'");
        let desk = ServeConfig::resolve(dir, desk, FileConfig::default()).expect("the city's number").ra.city_desk;
        assert_eq!(desk.named(), "行政管理課（電話 03-1234-5678、平日 8:30〜17:15）");
        let bad = ServeConfig::resolve(dir, toml("city_phone = 'ask the clerk'"), FileConfig::default());
        assert!(bad.is_err_and(|e| e.to_string().contains("city_phone")), "a number no one can dial is refused");
    }

    #[test]
    fn addresses_are_parsed_at_load_and_a_wrong_one_is_named() {
        let dir = Path::new("/srv/pki");
        let load = |text: &str| ServeConfig::resolve(dir, toml(text), FileConfig::default());
        let good = load(
            "public_url = 'http://pki.city.example/connect'\nhttps_url = 'https://pki.city.example:8443/'\n\
             [notifications]\nwebhook_url = 'https://chat.example/hook?room=it'\nsmtp_url = 'smtps://mail.city.example'\n\
             mail_from = 'CONNECT <pki@city.example>'\non_call = ['it@city.example']\nconsole_url = 'https://pki.city.example:8443'",
        )
        .expect("good addresses");
        assert_eq!(good.public_url.as_str(), "http://pki.city.example/connect");
        assert_eq!(good.https.url.map(String::from).as_deref(), Some("https://pki.city.example:8443/"));
        let n = &good.ra.notify;
        assert_eq!(n.webhook_url.as_ref().map(url::Url::as_str), Some("https://chat.example/hook?room=it"));
        assert_eq!(n.mail_from.email.to_string(), "pki@city.example");
        assert_eq!(n.on_call.iter().map(ToString::to_string).collect::<Vec<_>>(), ["it@city.example"]);
        for (text, named) in [
            ("public_url = 'pki.city.example'", "public_url"),
            ("public_url = 'ftp://pki.city.example'", "public_url"),
            ("public_url = 'http://pki.city.example/?a=b'", "public_url"),
            ("public_url = 'http://user:pw@pki.city.example'", "public_url"),
            ("https_url = 'http://pki.city.example'", "https_url"),
            ("https_url = 'https://pki.city.example/console'", "https_url"),
            ("https_url = 'https://'", "https_url"),
            ("[notifications]\nwebhook_url = 'hooks.example/x'", "notifications.webhook_url"),
            ("[notifications]\nwebhook_url = 'https://chat.example/x#y'", "notifications.webhook_url"),
            ("[notifications]\nconsole_url = 'http://pki.city.example'", "notifications.console_url"),
            ("[notifications]\nsmtp_url = 'mail.city.example:25'", "notifications.smtp_url"),
            ("[notifications]\nmail_from = 'pki at city'", "notifications.mail_from"),
            ("[notifications]\non_call = ['it@city.example', 'nobody']", "notifications.on_call"),
        ] {
            let refused = load(text).err().unwrap_or_else(|| panic!("{text:?} accepted at load"));
            assert!(refused.to_string().contains(named), "{text:?}: {refused}");
        }
    }

    #[test]
    fn set_takes_any_key_in_toml_or_as_text_and_refuses_unknown_ones() {
        let n = FileConfig::setting("expiry_notice_days=14").expect("a number");
        assert_eq!(n.expiry_notice_days, Some(14));
        let url = FileConfig::setting("https_url=https://pki.city.example/").expect("text");
        assert_eq!(url.https_url.as_deref(), Some("https://pki.city.example/"));
        let list = FileConfig::setting("trusted_proxies=[\"10.0.0.0/8\"]").expect("a list");
        assert_eq!(list.trusted_proxies, vec!["10.0.0.0/8".to_string()]);
        assert!(FileConfig::setting("expiry_notice_dayz=14").is_err(), "a misspelt key");
        assert!(FileConfig::setting("expiry_notice_days").is_err(), "no value");
        assert!(FileConfig::setting("expiry_notice_days=fourteen").is_err(), "text where a number goes");
        assert!(FileConfig::setting("rate_limit_per_minute=5\nallow_tls12=true").is_err(), "a second key smuggled in");
        assert!(FileConfig::setting("calendar.opens=\"08:00\"").is_err(), "a dotted key");
    }
}
