//! The `connect-pki` binary: a thin front door over `connect-pki-server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use connect_pki_domain::SystemClock;
use connect_pki_server::config::{
    DEFAULT_API_ADDR, DEFAULT_PUBLIC_ADDR, DEFAULT_PUBLIC_URL, FileConfig, default_database_url,
};
use connect_pki_server::keys::Pkcs11Config;
use connect_pki_server::{InitOptions, InitReport, ServeConfig};
use connect_pki_store::Store;

#[derive(Debug, Parser)]
#[command(name = "connect-pki", version, about = "Certificate lifecycle service for the CONNECT case-record system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: CA hierarchy, database and the first admin.
    Init(InitArgs),
    /// Run the plain and HTTPS listeners (initialises first if the data directory is missing).
    Serve(Box<ServeArgs>),
    /// List valid certificates that should not be (retired or deleted user,
    /// closed facility, lost device); exit 1 if there are any.
    Check(DbArgs),
    /// Print every closed day of a year (national holidays, 年末年始, configured
    /// closures from config.toml's [calendar]), one `YYYY-MM-DD name` per line.
    Calendar {
        /// The year, e.g. 2027.
        #[arg(value_parser = clap::value_parser!(i32).range(1949..=2150))]
        year: i32,
        /// Data directory (for its config.toml).
        #[arg(long, env = "CONNECT_PKI_DATA_DIR", default_value = "./connect-pki-data")]
        data_dir: PathBuf,
    },
    /// Copy the data directory and (SQLite) a consistent snapshot of the
    /// database into DEST, a new directory, while the service runs. For
    /// PostgreSQL, dump the database with pg_dump beside it (README).
    Backup {
        /// A directory that does not exist yet (or is empty).
        dest: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Put a backup made by `backup` back in place; the service must be
    /// stopped. Its next start re-applies every revocation of the newest CRL
    /// it published, so nothing revoked since the backup comes back.
    Restore {
        /// The backup directory.
        src: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Issuing CA tools.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create the next generation of the issuing CA under the root. It
    /// issues every new certificate after the service restarts; the older
    /// ones keep their CRL and OCSP answers for what they issued.
    Rollover {
        #[command(flatten)]
        db: DbArgs,
        /// Root kept offline: keep the new key here (pending) and write a
        /// CSR for the root's operator to FILE.
        #[arg(long, value_name = "FILE", conflicts_with = "import")]
        csr_out: Option<PathBuf>,
        /// Root kept offline: install the certificate the root signed for
        /// the pending key (PEM).
        #[arg(long, value_name = "FILE")]
        import: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and compare it with the checkpoints in the data
    /// directory; exit 1 on any edited or missing record, a log cut short or
    /// a checkpoint whose MAC does not verify.
    Verify(DbArgs),
}

#[derive(Debug, Args)]
struct DbArgs {
    /// Data directory.
    #[arg(long, env = "CONNECT_PKI_DATA_DIR", default_value = "./connect-pki-data")]
    data_dir: PathBuf,
    /// Database URL (default: SQLite inside the data directory; postgres://… for PostgreSQL).
    #[arg(long, env = "CONNECT_PKI_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct InitArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Base URL written into certificates (CRL distribution point, OCSP, caIssuers).
    #[arg(long, env = "CONNECT_PKI_PUBLIC_URL", default_value = DEFAULT_PUBLIC_URL)]
    public_url: String,
    /// Extra DNS name or IP address for the mTLS listener's certificate (repeatable).
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// Make and keep every CA key (root, issuing CA, OCSP signer, TLS) in a
    /// PKCS#11 token: the vendor's module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    /// The PIN comes from CONNECT_PKI_PKCS11_PIN or --pkcs11-pin-file.
    #[arg(long, requires = "pkcs11_token")]
    pkcs11_module: Option<PathBuf>,
    /// The label of the token (with --pkcs11-module).
    #[arg(long, requires = "pkcs11_module")]
    pkcs11_token: Option<String>,
    /// A file holding the token's user PIN, read at every start (with --pkcs11-module).
    #[arg(long, requires = "pkcs11_module")]
    pkcs11_pin_file: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Public HTTP listener [default: 127.0.0.1:8080].
    #[arg(long, env = "CONNECT_PKI_PUBLIC_ADDR")]
    public_addr: Option<SocketAddr>,
    /// mTLS HTTPS listener [default: 127.0.0.1:8443].
    #[arg(long, env = "CONNECT_PKI_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// Base URL for certificates issued from now on [default: the one given at init].
    #[arg(long, env = "CONNECT_PKI_PUBLIC_URL")]
    public_url: Option<String>,
    /// How long enrollment codes stay valid, in hours [default: 72].
    #[arg(long, env = "CONNECT_PKI_ENROLLMENT_CODE_HOURS", value_parser = clap::value_parser!(u32).range(1..=8760))]
    enrollment_code_hours: Option<u32>,
    /// CRL nextUpdate, hours after thisUpdate [default: 24]; rebuilt at half of it.
    #[arg(long, env = "CONNECT_PKI_CRL_NEXT_UPDATE_HOURS", value_parser = clap::value_parser!(u32).range(1..=720))]
    crl_next_update_hours: Option<u32>,
    /// Validity of OCSP responses and their HTTP cache lifetime, in seconds [default: 60]:
    /// the longest a relying party can go on seeing `good` after a revocation.
    #[arg(long, env = "CONNECT_PKI_OCSP_MAX_AGE", value_parser = clap::value_parser!(u32).range(10..=3600))]
    ocsp_max_age_seconds: Option<u32>,
    /// Public submissions (applications, enrollments) accepted per client address and minute [default: 30].
    #[arg(long, env = "CONNECT_PKI_RATE_LIMIT_PER_MINUTE", value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit_per_minute: Option<u32>,
    /// Minutes a facility manager has to claim an emergency in business hours
    /// before it moves to 行政管理課 [default: 30].
    #[arg(long, env = "CONNECT_PKI_ESCALATION_SLA_MINUTES", value_parser = clap::value_parser!(u32).range(1..=1440))]
    escalation_sla_minutes: Option<u32>,
    /// Hours after which a hold nobody resolved becomes a revocation [default: 72].
    #[arg(long, env = "CONNECT_PKI_HOLD_LIMIT_HOURS", value_parser = clap::value_parser!(u32).range(1..=720))]
    hold_limit_hours: Option<u32>,
    /// Certificate renewals a device may make per hour; more get 429 [default: 10].
    #[arg(long, env = "CONNECT_PKI_RENEWALS_PER_HOUR", value_parser = clap::value_parser!(u32).range(1..=1000))]
    renewals_per_hour: Option<u32>,
    /// PostgreSQL only: LISTEN for revocations made by other instances, so
    /// they are enforced here at once; `false` polls only [default: true].
    #[arg(long, env = "CONNECT_PKI_FEED_LISTEN")]
    feed_listen: Option<bool>,
    /// Seconds without a successful read of the revocation feed after which
    /// this instance fails closed: OCSP answers tryLater, new handshakes are
    /// refused [default: 30].
    #[arg(long, env = "CONNECT_PKI_FEED_MAX_LAG_SECONDS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    feed_max_lag_seconds: Option<u32>,
    /// Seconds between comparisons of the revocation index with the database [default: 300].
    #[arg(long, env = "CONNECT_PKI_RECONCILE_SECONDS", value_parser = clap::value_parser!(u32).range(1..=86400))]
    reconcile_seconds: Option<u32>,
    /// Connections each listener serves at once; more wait [default: 1024].
    #[arg(long, env = "CONNECT_PKI_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: Option<u32>,
    /// Seconds a client has to send a request's headers [default: 10].
    #[arg(long, env = "CONNECT_PKI_HEADER_TIMEOUT_SECONDS", value_parser = clap::value_parser!(u32).range(1..=600))]
    header_timeout_seconds: Option<u32>,
    /// Seconds a connection may stay silent before it is closed [default: 60].
    #[arg(long, env = "CONNECT_PKI_IDLE_TIMEOUT_SECONDS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    idle_timeout_seconds: Option<u32>,
    /// Also accept TLS 1.2 on the mTLS listener (TLS 1.2 sends the client
    /// certificate in clear) [default: false].
    #[arg(long, env = "CONNECT_PKI_ALLOW_TLS12")]
    allow_tls12: Option<bool>,
    /// Seconds between checkpoints of the audit log's head, written (when it
    /// moved) to <data-dir>/audit-checkpoints.jsonl and the log [default: 300].
    #[arg(long, env = "CONNECT_PKI_AUDIT_CHECKPOINT_SECONDS", value_parser = clap::value_parser!(u32).range(1..=86400))]
    audit_checkpoint_seconds: Option<u32>,
    /// Seconds between runs of the consistency check (`connect-pki check`)
    /// inside the service; its result is in /metrics and the log [default: 600].
    #[arg(long, env = "CONNECT_PKI_CONSISTENCY_CHECK_SECONDS", value_parser = clap::value_parser!(u32).range(1..=86400))]
    consistency_check_seconds: Option<u32>,
    /// Seconds between checks whether the OCSP signer or the TLS certificate
    /// is due for renewal (also checked at start) [default: 3600].
    #[arg(long, env = "CONNECT_PKI_RENEWAL_CHECK_SECONDS", value_parser = clap::value_parser!(u32).range(1..=86400))]
    renewal_check_seconds: Option<u32>,
    /// Days a rejected application (the applicant's personal data with it)
    /// is kept after the decision before it is purged [default: 90].
    #[arg(long, env = "CONNECT_PKI_REJECTED_APPLICATION_DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    rejected_application_days: Option<u32>,
    /// Seconds between looks for certificates running out, whose managers
    /// (and, for the CA's own, 行政管理課) are e-mailed once at
    /// --expiry-notice-days and once at 7 days [default: 3600].
    #[arg(long, env = "CONNECT_PKI_EXPIRY_CHECK_SECONDS", value_parser = clap::value_parser!(u32).range(1..=86400))]
    expiry_check_seconds: Option<u32>,
    /// Days before it runs out that a certificate is listed as expiring and
    /// first announced [default: 30].
    #[arg(long, env = "CONNECT_PKI_EXPIRY_NOTICE_DAYS", value_parser = clap::value_parser!(u32).range(1..=400))]
    expiry_notice_days: Option<u32>,
    /// Record what each relying party asks the OCSP responder and which
    /// CRLs it downloads, and each certificate's handshakes [default: true].
    #[arg(long, env = "CONNECT_PKI_RELYING_PARTY_RECORDING")]
    relying_party_recording: Option<bool>,
    /// Seconds between writes of that record to the database [default: 5].
    #[arg(long, env = "CONNECT_PKI_RELYING_PARTY_FLUSH_SECONDS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    relying_party_flush_seconds: Option<u32>,
    /// Days that record is kept after a relying party's last question [default: 400].
    #[arg(long, env = "CONNECT_PKI_RELYING_PARTY_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    relying_party_retention_days: Option<u32>,
    /// PEM certificate chain for the HTTPS listener (e.g. from the city's
    /// public CA) [default: the server certificate from our CA].
    #[arg(long, env = "CONNECT_PKI_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (unencrypted) for --tls-cert.
    #[arg(long, env = "CONNECT_PKI_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// HTTPS address the plain listener redirects pages to, e.g.
    /// https://pki.city.example [default: the requested host on the HTTPS port].
    #[arg(long, env = "CONNECT_PKI_HTTPS_URL")]
    https_url: Option<String>,
    /// A reverse proxy (address or network, repeatable) whose X-Forwarded-For
    /// and X-Forwarded-Proto are believed [default: none].
    #[arg(long = "trusted-proxy", env = "CONNECT_PKI_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<String>,
    /// Write {"public_addr", "api_addr"} here once listening (handy with port 0).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONNECT_PKI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // JSON lines for log collectors; plain text (coloured only on a terminal) otherwise.
    if std::env::var("CONNECT_PKI_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Init(args) => {
            let opts = InitOptions {
                data_dir: args.db.data_dir,
                database_url: args.db.database_url,
                public_url: args.public_url,
                tls_names: args.tls_names,
                pkcs11: match (args.pkcs11_module, args.pkcs11_token) {
                    (Some(module), Some(token)) => Some(Pkcs11Config { module, token, pin_file: args.pkcs11_pin_file }),
                    _ => None,
                },
            };
            let report = connect_pki_server::init(&opts, &SystemClock).await?;
            print_report(&report, args.json)?;
        }
        Command::Serve(args) => serve(*args).await?,
        Command::Calendar { year, data_dir } => {
            let hours = FileConfig::load(&data_dir)?.calendar.unwrap_or_default().business_hours()?;
            for day in hours.closed_days(year) {
                println!("{} {}", day.date, day.name);
            }
        }
        Command::Check(db) => {
            let store = Store::connect(&database_url(&db)?).await?;
            let offenders = store.consistency_offenders().await?;
            store.close().await;
            if offenders.is_empty() {
                println!(
                    "consistent: no valid certificate belongs to a retired or deleted user, a closed facility or a lost device"
                );
            } else {
                for o in &offenders {
                    println!("{}\t{}", o.serial, o.why);
                }
                eprintln!("{} certificate(s) should have been revoked", offenders.len());
                return Ok(std::process::ExitCode::FAILURE);
            }
        }
        Command::Audit { command: AuditCommand::Verify(db) } => return audit_verify(&db).await,
        Command::Ca { command: CaCommand::Rollover { db, csr_out, import } } => {
            ca_rollover(&db, csr_out, import).await?;
        }
        Command::Backup { dest, db } => {
            let store = Store::connect(&database_url(&db)?).await?;
            let dir = connect_pki_server::datadir::DataDir::new(&db.data_dir);
            let made = connect_pki_server::backup::backup(&dir, &store, &dest, time::OffsetDateTime::now_utc()).await;
            store.close().await;
            let made = made?;
            println!("backup written to {} ({} files from the data directory)", dest.display(), made.files.len());
            match &made.database {
                Some(db) => println!("database: {db} (a consistent snapshot)"),
                None => println!(
                    "database: PostgreSQL is not in this backup; dump it now with\n  pg_dump --format=custom --file {}/database.pgdump <database URL>",
                    dest.display()
                ),
            }
            if let Some(n) = made.crl_number {
                println!("newest CRL kept: number {n}");
            }
        }
        Command::Restore { src, db } => {
            // The data directory may be gone (a lost machine): then the
            // backup's own settings say where the database is.
            let settings_from = if db.data_dir.join("config.toml").exists() { &db.data_dir } else { &src };
            let file = FileConfig::load(settings_from)?;
            let url =
                db.database_url.clone().or(file.database_url).unwrap_or_else(|| default_database_url(&db.data_dir));
            let sqlite = connect_pki_server::config::sqlite_path(&url);
            let dir = connect_pki_server::datadir::DataDir::new(&db.data_dir);
            let done = connect_pki_server::backup::restore(&src, &dir, sqlite.as_deref())?;
            println!("restored the backup taken at {} into {}", done.manifest.taken_at, db.data_dir.display());
            match &done.database {
                Some(path) => println!("database: {}", path.display()),
                None => println!("database: restore the PostgreSQL dump with pg_restore before starting the service"),
            }
            if let Some(previous) = &done.previous {
                println!("the data directory it replaced is kept as {}", previous.display());
            }
            if done.kept_newer_crl {
                println!(
                    "kept the data directory's newer CRL (number {}): the next start re-applies its revocations",
                    done.crl_number.unwrap_or_default()
                );
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The chain first, then the checkpoints; both are reported, and either
/// failing fails the command.
async fn audit_verify(db: &DbArgs) -> anyhow::Result<std::process::ExitCode> {
    use connect_pki_server::checkpoint::{self, CheckpointCheck};
    let store = Store::connect(&database_url(db)?).await?;
    let chain = store.verify_audit().await;
    let checkpoints = checkpoint::verify(&store, &db.data_dir).await;
    store.close().await;
    let chain = chain?;
    let mut ok = match chain.first_break {
        None => {
            println!("audit log hash chain intact: {} records verified", chain.records);
            true
        }
        Some((id, why)) => {
            println!("audit log BROKEN at record {id}: {why} ({} records before it verified)", chain.records);
            false
        }
    };
    match checkpoints? {
        CheckpointCheck::NoFile(path) => {
            println!("no audit checkpoints in {} yet: a log cut short cannot be detected", path.display())
        }
        CheckpointCheck::Intact { checkpoints, newest } => match newest {
            Some(c) => println!(
                "audit checkpoints intact: {checkpoints} verified, the newest of {} at record {} ({} records)",
                c.at, c.id, c.count
            ),
            None => println!("audit checkpoint file is empty"),
        },
        CheckpointCheck::Broken(why) => {
            println!("audit log BROKEN: {why}");
            ok = false;
        }
    }
    Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

async fn ca_rollover(db: &DbArgs, csr_out: Option<PathBuf>, import: Option<PathBuf>) -> anyhow::Result<()> {
    use connect_pki_server::rollover;
    let dir = connect_pki_server::datadir::DataDir::new(&db.data_dir);
    let public_url = FileConfig::load(&db.data_dir)?.public_url.unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_string());
    let now = time::OffsetDateTime::now_utc();
    let made = match (csr_out, import) {
        (Some(out), _) => {
            rollover::ensure_nothing_pending(&dir)?;
            let (generation, csr) = rollover::request(&dir, &public_url)?;
            std::fs::write(&out, csr).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "CSR for issuing CA generation {generation} written to {}; have the root sign it as a CA \
                 (pathLen 0), then run `connect-pki ca rollover --import <certificate>`",
                out.display()
            );
            return Ok(());
        }
        (None, Some(cert)) => {
            let pem = std::fs::read_to_string(&cert).with_context(|| format!("reading {}", cert.display()))?;
            rollover::import(&dir, &public_url, &pem, now)?
        }
        (None, None) => {
            rollover::ensure_nothing_pending(&dir)?;
            rollover::rollover(&dir, &public_url, now)?
        }
    };
    let store = Store::connect(&database_url(db)?).await?;
    let entry = connect_pki_store::AuditEntry {
        actor: format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into())),
        action: "ca.rollover".into(),
        target: format!("ca:{}", made.name),
        outcome: "ok".into(),
        detail: serde_json::to_value(&made)?,
        facility: None,
        user: None,
    };
    let audited = store.audit(now, &entry).await;
    store.close().await;
    audited?;
    println!(
        "issuing CA generation {} ({}) created: {}, valid until {}, SHA-256 {}",
        made.generation, made.name, made.subject, made.not_after, made.sha256
    );
    println!("restart the service: new certificates then come from it; the older CAs keep their CRL and OCSP");
    Ok(())
}

fn database_url(db: &DbArgs) -> anyhow::Result<String> {
    let file = FileConfig::load(&db.data_dir)?;
    Ok(db.database_url.clone().or(file.database_url).unwrap_or_else(|| default_database_url(&db.data_dir)))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if !args.db.data_dir.exists() {
        tracing::info!(data_dir = %args.db.data_dir.display(), "no data directory yet: initialising");
        let opts = InitOptions {
            data_dir: args.db.data_dir.clone(),
            database_url: args.db.database_url.clone(),
            public_url: args.public_url.clone().unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_string()),
            tls_names: Vec::new(),
            pkcs11: None,
        };
        let report = connect_pki_server::init(&opts, &SystemClock).await?;
        print_report(&report, false)?;
    }
    let file = FileConfig::load(&args.db.data_dir)?;
    let parse = |s: &str| s.parse::<SocketAddr>().context("built-in default address");
    let config = ServeConfig {
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
        feed: connect_pki_server::config::FeedSettings {
            listen_url: None,
            max_lag: std::time::Duration::from_secs(u64::from(
                args.feed_max_lag_seconds.or(file.feed_max_lag_seconds).unwrap_or(30),
            )),
            reconcile_every: std::time::Duration::from_secs(u64::from(
                args.reconcile_seconds.or(file.reconcile_seconds).unwrap_or(300),
            )),
        },
        feed_listen: args.feed_listen.or(file.feed_listen).unwrap_or(true),
        limits: connect_pki_server::listen::Limits {
            max_connections: args.max_connections.or(file.max_connections).unwrap_or(1024) as usize,
            header_read_timeout: std::time::Duration::from_secs(u64::from(
                args.header_timeout_seconds.or(file.header_timeout_seconds).unwrap_or(10),
            )),
            idle_timeout: std::time::Duration::from_secs(u64::from(
                args.idle_timeout_seconds.or(file.idle_timeout_seconds).unwrap_or(60),
            )),
        },
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
        relying_parties: connect_pki_server::relying::RecordSettings {
            enabled: args.relying_party_recording.or(file.relying_party_recording).unwrap_or(true),
            flush_every: std::time::Duration::from_secs(u64::from(
                args.relying_party_flush_seconds.or(file.relying_party_flush_seconds).unwrap_or(5),
            )),
            retention: time::Duration::days(i64::from(
                args.relying_party_retention_days.or(file.relying_party_retention_days).unwrap_or(400),
            )),
            names: connect_pki_server::relying::Names::parse(&file.relying_parties)
                .context("relying_parties in config.toml")?,
        },
        data_dir: args.db.data_dir,
        ready_file: args.ready_file,
    };
    connect_pki_server::serve(config, Arc::new(SystemClock)).await
}

fn print_report(r: &InitReport, json: bool) -> anyhow::Result<()> {
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
