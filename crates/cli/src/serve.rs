//! `connect-pki serve`: the settings merged (flags and environment, then
//! config.toml, then defaults), and init's report.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use connect_pki_domain::SystemClock;
use connect_pki_server::config::{DEFAULT_API_ADDR, DEFAULT_PUBLIC_ADDR, DEFAULT_PUBLIC_URL, FileConfig};
use connect_pki_server::{InitOptions, InitReport, ServeConfig};

use crate::{ServeArgs, database_url};

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if !args.db.data_dir.exists() {
        init_first(&args).await?;
    }
    let file = FileConfig::load(&args.db.data_dir)?;
    let config = config_of(args, file)?;
    connect_pki_server::serve(config, Arc::new(SystemClock)).await
}

/// The README's first run: no data directory yet, so one is made.
async fn init_first(args: &ServeArgs) -> anyhow::Result<()> {
    tracing::info!(data_dir = %args.db.data_dir.display(), "no data directory yet: initialising");
    let opts = InitOptions {
        data_dir: args.db.data_dir.clone(),
        database_url: args.db.database_url.clone(),
        public_url: args.public_url.clone().unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_string()),
        tls_names: Vec::new(),
        pkcs11: None,
    };
    let report = connect_pki_server::init(&opts, &SystemClock).await?;
    print_report(&report, false)
}

/// Flags and environment first, then config.toml, then the defaults.
fn config_of(args: ServeArgs, file: FileConfig) -> anyhow::Result<ServeConfig> {
    let parse = |s: &str| s.parse::<SocketAddr>().context("built-in default address");
    let (feed, limits, relying_parties) = (feed(&args, &file), limits(&args, &file), relying_parties(&args, &file)?);
    Ok(ServeConfig {
        database_url: database_url(&args.db)?,
        public_url: args.public_url.or(file.public_url).unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_string()),
        public_addr: args.public_addr.or(file.public_addr).map_or_else(|| parse(DEFAULT_PUBLIC_ADDR), Ok)?,
        api_addr: args.api_addr.or(file.api_addr).map_or_else(|| parse(DEFAULT_API_ADDR), Ok)?,
        enrollment_code_ttl: time::Duration::hours(i64::from(
            args.enrollment_code_hours.or(file.enrollment_code_hours).unwrap_or(72),
        )),
        crl_validity: time::Duration::hours(i64::from(
            args.crl_next_update_hours.or(file.crl_next_update_hours).unwrap_or(24),
        )),
        ocsp_validity: time::Duration::seconds(i64::from(
            args.ocsp_max_age_seconds.or(file.ocsp_max_age_seconds).unwrap_or(60),
        )),
        rate_limit_per_minute: args.rate_limit_per_minute.or(file.rate_limit_per_minute).unwrap_or(30),
        calendar: file.calendar.clone().unwrap_or_default().business_hours()?,
        escalation_sla: time::Duration::minutes(i64::from(
            args.escalation_sla_minutes.or(file.escalation_sla_minutes).unwrap_or(30),
        )),
        hold_limit: time::Duration::hours(i64::from(args.hold_limit_hours.or(file.hold_limit_hours).unwrap_or(72))),
        renewals_per_hour: args
            .renewals_per_hour
            .or(file.renewals_per_hour)
            .unwrap_or(connect_pki_domain::enrollment::DEFAULT_RENEWALS_PER_HOUR),
        notify: file.notifications.clone().unwrap_or_default().resolve(),
        feed,
        feed_listen: args.feed_listen.or(file.feed_listen).unwrap_or(true),
        limits,
        allow_tls12: args.allow_tls12.or(file.allow_tls12).unwrap_or(false),
        audit_checkpoints: Some(connect_pki_server::checkpoint::CheckpointSettings {
            dir: args.db.data_dir.clone(),
            every: args
                .audit_checkpoint_seconds
                .or(file.audit_checkpoint_seconds)
                .map_or(connect_pki_server::checkpoint::DEFAULT_EVERY, |s| {
                    std::time::Duration::from_secs(u64::from(s))
                }),
        }),
        https: connect_pki_server::config::HttpsSettings {
            cert_files: match (args.tls_cert.or(file.tls_cert_file), args.tls_key.or(file.tls_key_file)) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => anyhow::bail!("tls_cert_file and tls_key_file go together: set both or neither"),
            },
            url: args.https_url.or(file.https_url).map(|u| u.trim_end_matches('/').to_string()),
            trusted_proxies: if args.trusted_proxies.is_empty() { file.trusted_proxies } else { args.trusted_proxies },
        },
        consistency_check: Some(std::time::Duration::from_secs(u64::from(
            args.consistency_check_seconds.or(file.consistency_check_seconds).unwrap_or(600),
        ))),
        renewal_check: Some(std::time::Duration::from_secs(u64::from(
            args.renewal_check_seconds.or(file.renewal_check_seconds).unwrap_or(3600),
        ))),
        keep_crl: true,
        rejected_application_retention: time::Duration::days(i64::from(
            args.rejected_application_days
                .or(file.rejected_application_days)
                .unwrap_or(connect_pki_domain::application::DEFAULT_REJECTED_RETENTION_DAYS),
        )),
        expiry_check: Some(std::time::Duration::from_secs(u64::from(
            args.expiry_check_seconds.or(file.expiry_check_seconds).unwrap_or(3600),
        ))),
        expiry_notice_days: {
            let days = args
                .expiry_notice_days
                .or(file.expiry_notice_days)
                .unwrap_or(connect_pki_domain::expiry::DEFAULT_WINDOW_DAYS);
            connect_pki_domain::expiry::window(days).context("expiry_notice_days in config.toml")?;
            days
        },
        relying_parties,
        data_dir: args.db.data_dir,
        ready_file: args.ready_file,
    })
}

fn feed(args: &ServeArgs, file: &FileConfig) -> connect_pki_server::config::FeedSettings {
    connect_pki_server::config::FeedSettings {
        listen_url: None,
        max_lag: std::time::Duration::from_secs(u64::from(
            args.feed_max_lag_seconds.or(file.feed_max_lag_seconds).unwrap_or(30),
        )),
        reconcile_every: std::time::Duration::from_secs(u64::from(
            args.reconcile_seconds.or(file.reconcile_seconds).unwrap_or(300),
        )),
    }
}

fn limits(args: &ServeArgs, file: &FileConfig) -> connect_pki_server::listen::Limits {
    connect_pki_server::listen::Limits {
        max_connections: args.max_connections.or(file.max_connections).unwrap_or(1024) as usize,
        header_read_timeout: std::time::Duration::from_secs(u64::from(
            args.header_timeout_seconds.or(file.header_timeout_seconds).unwrap_or(10),
        )),
        idle_timeout: std::time::Duration::from_secs(u64::from(
            args.idle_timeout_seconds.or(file.idle_timeout_seconds).unwrap_or(60),
        )),
    }
}

fn relying_parties(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<connect_pki_server::relying::RecordSettings> {
    Ok(connect_pki_server::relying::RecordSettings {
        enabled: args.relying_party_recording.or(file.relying_party_recording).unwrap_or(true),
        flush_every: std::time::Duration::from_secs(u64::from(
            args.relying_party_flush_seconds.or(file.relying_party_flush_seconds).unwrap_or(5),
        )),
        retention: time::Duration::days(i64::from(
            args.relying_party_retention_days.or(file.relying_party_retention_days).unwrap_or(400),
        )),
        names: connect_pki_server::relying::Names::parse(&file.relying_parties)
            .context("relying_parties in config.toml")?,
    })
}

pub(crate) fn print_report(r: &InitReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    println!("connect-pki initialised in {}", r.data_dir.display());
    println!("  database            {}", r.database);
    println!("  public URL          {}", r.public_url);
    println!("  root CA SHA-256     {}", r.root_ca_sha256);
    println!("  issuing CA SHA-256  {}", r.issuing_ca_sha256);
    match (&r.pkcs11_token, &r.passphrase_file) {
        (Some(t), _) => println!("  CA keys             in PKCS#11 token {t:?} (no key files)"),
        (None, Some(p)) => {
            println!("  CA key passphrase   generated in {} (keep it apart from backups of ca/)", p.display())
        }
        (None, None) => println!("  CA key passphrase   from CONNECT_PKI_PASSPHRASE (not stored)"),
    }
    println!();
    println!("First administrator ({}), certificate serial {}:", r.bootstrap.login_id, r.bootstrap.serial);
    println!("  PKCS#12 file        {}", r.bootstrap.pkcs12_path.display());
    println!("  PKCS#12 password    {}", r.bootstrap.pkcs12_password);
    println!("  The password is shown only this once; it is not stored.");
    Ok(())
}
