//! The tables of config.toml: `[calendar]` (opening hours and closures),
//! `[notifications]` (where emergency and expiry notices go, typed into the
//! registration authority's `NotifyConfig`) and `[pkcs11]` (the token holding
//! the CA keys).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::values::{UrlKind, web_url};

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
    pub(crate) opens: Option<String>,
    pub(crate) closes: Option<String>,
    pub(crate) year_end_closure: Option<bool>,
    #[serde(default)]
    pub(crate) closures: std::collections::BTreeMap<String, String>,
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
pub(crate) struct NotificationsConfig {
    pub(crate) webhook_url: Option<String>,
    pub(crate) webhook_secret: Option<String>,
    pub(crate) smtp_url: Option<String>,
    pub(crate) mail_from: Option<String>,
    #[serde(default)]
    pub(crate) on_call: Vec<String>,
    pub(crate) console_url: Option<String>,
}

connect_pki_domain::redacted_debug!(NotificationsConfig { mail_from, on_call, console_url; webhook_url, webhook_secret, smtp_url });

impl NotificationsConfig {
    /// The notification settings over `defaults`, with the webhook key from
    /// the environment when set; every address parsed, or the one that is
    /// wrong named.
    pub fn resolve(
        &self,
        defaults: &connect_pki_ra::notify::NotifyConfig,
    ) -> anyhow::Result<connect_pki_ra::notify::NotifyConfig> {
        let key = |k: &str| format!("notifications.{k}");
        let mail = |k: &str, text: &str| -> anyhow::Result<lettre::Address> {
            text.trim().parse().map_err(|e| anyhow::anyhow!("{} = {text:?} is not an e-mail address: {e}", key(k)))
        };
        Ok(connect_pki_ra::notify::NotifyConfig {
            webhook_url: self
                .webhook_url
                .as_deref()
                .map(|u| web_url(&key("webhook_url"), u, UrlKind::Endpoint))
                .transpose()?,
            webhook_secret: std::env::var("CONNECT_PKI_WEBHOOK_SECRET")
                .ok()
                .filter(|s| !s.is_empty())
                .or_else(|| self.webhook_secret.clone()),
            smtp_url: self
                .smtp_url
                .as_deref()
                .map(|u| u.trim().parse().map_err(|e| anyhow::anyhow!("{} = {e}", key("smtp_url"))))
                .transpose()?,
            mail_from: match &self.mail_from {
                Some(m) => m.trim().parse().map_err(|e| anyhow::anyhow!("{} = {m:?}: {e}", key("mail_from")))?,
                None => defaults.mail_from.clone(),
            },
            on_call: self.on_call.iter().map(|a| mail("on_call", a)).collect::<anyhow::Result<_>>()?,
            console_url: self
                .console_url
                .as_deref()
                .map(|u| web_url(&key("console_url"), u, UrlKind::HttpsBase))
                .transpose()?,
        })
    }
}

/// `[pkcs11]` in config.toml: the token holding the CA keys.
///
/// ```toml
/// [pkcs11]
/// module = "/usr/lib/softhsm/libsofthsm2.so"
/// token = "connect-pki"
/// pin_file = "/etc/connect-pki/pkcs11-pin"   # else CONNECT_PKI_PKCS11_PIN
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The vendor's PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// A file holding the user PIN; without it, `CONNECT_PKI_PKCS11_PIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    /// The label of a second token, under a PIN of its own, that holds the
    /// root key alone: `serve` never opens it, only `init` and `ca rollover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_token: Option<String>,
    /// A file holding the root token's PIN; without it, `CONNECT_PKI_PKCS11_ROOT_PIN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_pin_file: Option<PathBuf>,
}
