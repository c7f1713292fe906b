//! Settings of `serve`, merged once at start: built-in defaults, then
//! `<data-dir>/config.toml`, then environment variables and flags (the CLI
//! merges those two through clap). The rest of the code sees typed values only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use connect_pki_responder::FeedSettings;

/// Default public HTTP listener (DESIGN §5).
pub const DEFAULT_PUBLIC_ADDR: &str = "127.0.0.1:8080";
/// Default mTLS listener (DESIGN §5).
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8443";
/// Default base URL written into certificates.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

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
    pub enrollment_code_hours: Option<u32>,
    /// CRL nextUpdate, in hours after thisUpdate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crl_next_update_hours: Option<u32>,
    /// OCSP response validity, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocsp_max_age_seconds: Option<u32>,
    /// Public submissions per client address and minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// The city's business calendar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarConfig>,
    /// Minutes a manager has to claim an emergency in business hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_sla_minutes: Option<u32>,
    /// Hours after which an unresolved hold becomes a revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_limit_hours: Option<u32>,
    /// Renewals a device may make per hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewals_per_hour: Option<u32>,
    /// Where emergency notifications go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsConfig>,
    /// PostgreSQL: LISTEN for other instances' revocations (polling stays as
    /// the fallback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_listen: Option<bool>,
    /// Seconds without reading the revocation feed before failing closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed_max_lag_seconds: Option<u32>,
    /// Seconds between comparisons of the revocation index with the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile_seconds: Option<u32>,
    /// Connections each listener serves at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Seconds a client has to send a request's headers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_seconds: Option<u32>,
    /// Seconds a silent connection stays open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u32>,
    /// Also accept TLS 1.2 on the mTLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_tls12: Option<bool>,
    /// Seconds between checkpoints of the audit log's head (written only when it moved).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_checkpoint_seconds: Option<u32>,
    /// Seconds between runs of the consistency check inside the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency_check_seconds: Option<u32>,
    /// Days a rejected application is kept before it is purged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_application_days: Option<u32>,
    /// Seconds between checks whether the OCSP signer or TLS certificate is due for renewal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_check_seconds: Option<u32>,
    /// Seconds between looks for certificates running out (expiry notices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_check_seconds: Option<u32>,
    /// Days before a certificate runs out that it is listed and first announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_notice_days: Option<u32>,
    /// PEM certificate chain of the HTTPS listener, instead of the one from our CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key that goes with `tls_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// The HTTPS address the plain listener sends people to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_url: Option<String>,
    /// Reverse proxies (addresses or networks) whose X-Forwarded-For and
    /// X-Forwarded-Proto are believed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Names of relying parties by network: `name = ["10.1.0.0/16"]`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub relying_parties: std::collections::BTreeMap<String, Vec<String>>,
    /// Record what each relying party asks (OCSP, CRLs) and each certificate's handshakes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relying_party_recording: Option<bool>,
    /// Seconds between writes of that record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relying_party_flush_seconds: Option<u32>,
    /// Days that record is kept after a relying party's last question.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relying_party_retention_days: Option<u32>,
    /// The PKCS#11 token holding the CA keys (set by `init --pkcs11-module`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<crate::keys::Pkcs11Config>,
}

connect_pki_domain::redacted_debug!(FileConfig { public_url, public_addr, api_addr, enrollment_code_hours, crl_next_update_hours, ocsp_max_age_seconds, rate_limit_per_minute, calendar, escalation_sla_minutes, hold_limit_hours, notifications, feed_listen, feed_max_lag_seconds, reconcile_seconds, max_connections, header_timeout_seconds, idle_timeout_seconds, allow_tls12, renewals_per_hour, audit_checkpoint_seconds, consistency_check_seconds, renewal_check_seconds, rejected_application_days, expiry_check_seconds, expiry_notice_days, tls_cert_file, tls_key_file, https_url, trusted_proxies, relying_parties, relying_party_recording, relying_party_flush_seconds, relying_party_retention_days, pkcs11; database_url });

/// `[calendar]` in config.toml: opening hours and extra closure days.
///
/// ```toml
/// [calendar]
/// opens = "08:45"
/// closes = "17:15"
/// year_end_closure = true
/// closures = { "2026-06-15" = "システム保守日" }
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    pub opens: Option<String>,
    pub closes: Option<String>,
    pub year_end_closure: Option<bool>,
    #[serde(default)]
    pub closures: std::collections::BTreeMap<String, String>,
}

impl CalendarConfig {
    /// The business hours this configures, or what is wrong with it.
    pub fn business_hours(&self) -> anyhow::Result<connect_pki_domain::calendar::BusinessHours> {
        let mut b = connect_pki_domain::calendar::BusinessHours::default();
        let hm = time::macros::format_description!("[hour]:[minute]");
        if let Some(o) = &self.opens {
            b.opens =
                time::Time::parse(o, &hm).map_err(|e| anyhow::anyhow!("calendar.opens {o:?}: {e} (use HH:MM)"))?;
        }
        if let Some(c) = &self.closes {
            b.closes =
                time::Time::parse(c, &hm).map_err(|e| anyhow::anyhow!("calendar.closes {c:?}: {e} (use HH:MM)"))?;
        }
        if b.closes <= b.opens {
            anyhow::bail!("calendar: closes must be after opens");
        }
        if let Some(y) = self.year_end_closure {
            b.year_end_closure = y;
        }
        let ymd = time::macros::format_description!("[year]-[month]-[day]");
        for (day, name) in &self.closures {
            let date = time::Date::parse(day, &ymd)
                .map_err(|e| anyhow::anyhow!("calendar.closures {day:?}: {e} (use YYYY-MM-DD)"))?;
            b.closures.insert(date, name.clone());
        }
        Ok(b)
    }
}

impl FileConfig {
    /// Reads `<data_dir>/config.toml`; a missing file is an empty config.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(crate::datadir::CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
}

/// Everything `serve` needs, fully resolved.
#[derive(Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub public_url: String,
    pub public_addr: SocketAddr,
    pub api_addr: SocketAddr,
    /// Where to write `{"public_addr", "api_addr"}` once both listeners are
    /// bound (useful with port 0).
    pub ready_file: Option<PathBuf>,
    /// Lifetime of enrollment codes.
    pub enrollment_code_ttl: time::Duration,
    /// nextUpdate − thisUpdate of the CRL.
    pub crl_validity: time::Duration,
    /// Validity of OCSP responses: the longest a relying party may keep
    /// seeing `good` after a revocation.
    pub ocsp_validity: time::Duration,
    /// Public submissions per client address and minute.
    pub rate_limit_per_minute: u32,
    /// Business hours and closures (Asia/Tokyo).
    pub calendar: connect_pki_domain::calendar::BusinessHours,
    /// Time a manager has to claim an emergency in business hours.
    pub escalation_sla: time::Duration,
    /// Time after which an unresolved hold becomes a revocation.
    pub hold_limit: time::Duration,
    /// Renewals a device may make per hour.
    pub renewals_per_hour: u32,
    /// Where emergency notifications go.
    pub notify: crate::service::notify::NotifyConfig,
    /// How the revocation feed is followed (the listen URL is filled in
    /// from `database_url` when `feed_listen` is on and it is PostgreSQL).
    pub feed: FeedSettings,
    pub feed_listen: bool,
    /// Connection cap and timeouts of both listeners.
    pub limits: crate::listen::Limits,
    /// Accept TLS 1.2 on the mTLS listener too. Off by default: TLS 1.2 sends
    /// the client certificate, and with it the user's identity, in clear.
    pub allow_tls12: bool,
    /// Checkpoints of the audit log's head outside the database (`None`: none).
    pub audit_checkpoints: Option<crate::checkpoint::CheckpointSettings>,
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
    /// How long a rejected application is kept before it is purged.
    pub rejected_application_retention: time::Duration,
    /// How often the service looks for certificates to announce as running
    /// out (`None`: never; the lists and /metrics work either way).
    pub expiry_check: Option<std::time::Duration>,
    /// Days ahead the expiry lists look and the first notice goes
    /// (`domain::expiry::DEFAULT_WINDOW_DAYS`); the last goes at 7.
    pub expiry_notice_days: u32,
    /// What is recorded about relying parties and handshakes (`crate::relying`).
    pub relying_parties: crate::relying::RecordSettings,
}

/// Where secrets travel: HTTPS, with which certificate, behind which proxies.
#[derive(Debug, Clone, Default)]
pub struct HttpsSettings {
    /// (certificate chain, key) PEM files an operator supplies, e.g. from
    /// the city's public CA; `None`: the server certificate from our CA.
    pub cert_files: Option<(PathBuf, PathBuf)>,
    /// The address the plain listener redirects pages to; `None`: the host
    /// the browser asked for, on the HTTPS listener's port.
    pub url: Option<String>,
    /// Addresses or networks of trusted reverse proxies.
    pub trusted_proxies: Vec<String>,
}

connect_pki_domain::redacted_debug!(ServeConfig { data_dir, public_url, public_addr, api_addr, ready_file, enrollment_code_ttl, crl_validity, ocsp_validity, rate_limit_per_minute, calendar, escalation_sla, hold_limit, notify, feed, feed_listen, limits, allow_tls12, renewals_per_hour, audit_checkpoints, https, consistency_check, renewal_check, keep_crl, rejected_application_retention, expiry_check, expiry_notice_days, relying_parties; database_url });

/// `[notifications]` in config.toml.
///
/// ```toml
/// [notifications]
/// webhook_url = "https://chat.example/hooks/connect"
/// smtp_url = "smtp://127.0.0.1:25"
/// mail_from = "connect-pki@city.example"
/// on_call = ["it-oncall@city.example"]
/// console_url = "https://pki.city.example:8443"
/// ```
/// The webhook's HMAC key comes from `CONNECT_PKI_WEBHOOK_SECRET` (or
/// `webhook_secret` here, if the file is kept private).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_from: Option<String>,
    #[serde(default)]
    pub on_call: Vec<String>,
    pub console_url: Option<String>,
}

connect_pki_domain::redacted_debug!(NotificationsConfig { mail_from, on_call, console_url; webhook_url, webhook_secret, smtp_url });

impl NotificationsConfig {
    /// The notification settings, with the webhook key from the environment when set.
    pub fn resolve(&self) -> crate::service::notify::NotifyConfig {
        crate::service::notify::NotifyConfig {
            webhook_url: self.webhook_url.clone(),
            webhook_secret: std::env::var("CONNECT_PKI_WEBHOOK_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .or_else(|| self.webhook_secret.clone()),
            smtp_url: self.smtp_url.clone(),
            mail_from: self.mail_from.clone().unwrap_or_else(|| "connect-pki@localhost".into()),
            on_call: self.on_call.clone(),
            console_url: self.console_url.clone(),
        }
    }
}

/// The file of a `sqlite:` database URL; `None` for any other database.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The SQLite database inside a data directory, used when no URL is given.
pub fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join(crate::datadir::SQLITE_FILE).display())
}
