//! Setting values read from text into typed ones, each error naming the
//! setting: web addresses for what they are for, proxy networks, and the
//! database URL of a data directory.

use std::path::{Path, PathBuf};

/// The SQLite database in the data directory, used when no URL is given.
pub(crate) const SQLITE_FILE: &str = "connect-pki.db";

/// Default base URL written into certificates.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// What a web address in the settings is for, and so what it may be.
#[derive(Clone, Copy)]
pub(super) enum UrlKind {
    /// A base under which this service's pages hang, HTTPS only: the
    /// console, as messages link to it.
    HttpsBase,
    /// `https://host[:port]`, no path: this service's own pages, as
    /// browsers reach them.
    HttpsOrigin,
    /// An endpoint this service calls (a webhook): may carry a query.
    Endpoint,
}

/// `text`, the value of setting `key`, as a web address fit for `kind`, or
/// an error naming the setting and what is wrong.
pub(super) fn web_url(key: &str, text: &str, kind: UrlKind) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(text.trim()).map_err(|e| anyhow::anyhow!("{key} must be a URL, not {text:?}: {e}"))?;
    let https_only = matches!(kind, UrlKind::HttpsBase | UrlKind::HttpsOrigin);
    let schemes: &[&str] = if https_only { &["https"] } else { &["http", "https"] };
    let problem = if !schemes.contains(&url.scheme()) || !url.has_host() {
        Some(if https_only { "must be https://host[:port]" } else { "must be http:// or https://host[:port]" })
    } else if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        Some("must not carry a user name, password or #fragment")
    } else if url.query().is_some() && !matches!(kind, UrlKind::Endpoint) {
        Some("must not carry a ?query (paths are added to it)")
    } else if matches!(kind, UrlKind::HttpsOrigin) && url.path() != "/" {
        Some("must be https://host[:port] without a path")
    } else {
        None
    };
    match problem {
        Some(p) => anyhow::bail!("{key} {p}, not {text:?}"),
        None => Ok(url),
    }
}

/// The base URL certificates name (CRL, OCSP, caIssuers), checked by the
/// same rule the CA applies when it writes them (`ca::Profile`).
pub(super) fn public_url(text: &str) -> anyhow::Result<url::Url> {
    let profile = connect_pki_ca::Profile::new(text.trim()).map_err(|e| anyhow::anyhow!("public_url: {e}"))?;
    Ok(url::Url::parse(profile.public_url())?)
}

/// `a.b.c.d`, `a.b.c.d/n` or their IPv6 forms, as a network.
pub(super) fn address_or_network(text: &str) -> anyhow::Result<ipnet::IpNet> {
    let t = text.trim();
    t.parse::<ipnet::IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| anyhow::anyhow!("trusted proxy {t:?} is neither an address nor a network (a.b.c.d/n)"))
}

/// The file of a `sqlite:` database URL; `None` for any other database.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// The SQLite database inside a data directory, used when no URL is given.
pub fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join(SQLITE_FILE).display())
}
