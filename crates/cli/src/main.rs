//! The `connect-pki` binary: a thin front door over `connect-pki-server`.

mod receipt;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use connect_pki_domain::SystemClock;
use connect_pki_server::InitOptions;
use connect_pki_server::config::Pkcs11Config;
use connect_pki_server::config::{DEFAULT_PUBLIC_URL, FileConfig, default_database_url};
use connect_pki_store::Store;
use serve::{print_report, serve};

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
    /// PostgreSQL, dump the database with pg_dump beside it (docs/operations/backup-restore.md).
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
        /// The newest CRL of an issuing CA (DER or PEM), when the data
        /// directory holds none (a lost machine): what was revoked since the
        /// backup stays revoked. Repeat for each issuing CA.
        #[arg(long = "crl", value_name = "FILE")]
        crls: Vec<PathBuf>,
        /// Fetch the newest CRL of each issuing CA of the backup from a
        /// running instance or the public URL (http://<public address>): the
        /// same as --crl with each file downloaded.
        #[arg(long = "crl-from", value_name = "URL")]
        crl_from: Option<String>,
        /// Restore without any CRL newer than the backup: every revocation
        /// since the backup is lost.
        #[arg(long)]
        accept_lost_revocations: bool,
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
    /// Signed records (an incident record).
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ReceiptCommand {
    /// Check a signed incident record (the JSON the service gives, or its
    /// JWS alone): the signature, the signer's chain to the root, and the
    /// OCSP response inside; exit 1 if any fails.
    Verify {
        file: PathBuf,
        /// The trusted root certificate (PEM) [default: ca/root.pem in the data directory].
        #[arg(long)]
        root: Option<PathBuf>,
        /// Data directory (for its root certificate).
        #[arg(long, env = "CONNECT_PKI_DATA_DIR", default_value = "./connect-pki-data")]
        data_dir: PathBuf,
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

#[derive(Debug, Args, serde::Serialize)]
struct DbArgs {
    /// Data directory.
    #[arg(long, env = "CONNECT_PKI_DATA_DIR", default_value = "./connect-pki-data")]
    #[serde(skip)]
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
    /// A second token, under a PIN of its own, for the root key alone: `serve`
    /// never opens it, only `ca rollover` (PIN from CONNECT_PKI_PKCS11_ROOT_PIN
    /// or --pkcs11-root-pin-file).
    #[arg(long, requires = "pkcs11_module")]
    pkcs11_root_token: Option<String>,
    /// A file holding the root token's PIN (with --pkcs11-root-token).
    #[arg(long, requires = "pkcs11_root_token")]
    pkcs11_root_pin_file: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The flags of `serve`, each named as its key in config.toml (so that they
/// lay over it as one more layer: `connect_pki_server::config`). A setting
/// without a flag of its own is given with `--set key=value`.
#[derive(Debug, Args, serde::Serialize)]
struct ServeArgs {
    #[command(flatten)]
    #[serde(flatten)]
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
    /// How long a facility manager's code, mailed by the city on its slip,
    /// stays valid, in hours [default: 336, two weeks].
    #[arg(long, env = "CONNECT_PKI_MAILED_CODE_HOURS", value_parser = clap::value_parser!(u32).range(1..=8760))]
    mailed_code_hours: Option<u32>,
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
    /// Several instances: a revoke, hold or release answers once every live
    /// instance has applied it (waiting at most 1 s, naming any that did
    /// not); fails closed after 1 s without a feed read [default: false].
    #[arg(long, env = "CONNECT_PKI_REVOKE_WAITS_FOR_EVERY_INSTANCE")]
    revoke_waits_for_every_instance: Option<bool>,
    /// Seconds between comparisons of the revocation index with the database [default: 300].
    #[arg(long, env = "CONNECT_PKI_RECONCILE_SECONDS", value_parser = clap::value_parser!(u32).range(1..=86400))]
    reconcile_seconds: Option<u32>,
    /// Connections each listener serves at once; beyond, the longest-idle
    /// one makes room or the new one is closed [default: 1024].
    #[arg(long, env = "CONNECT_PKI_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: Option<u32>,
    /// Connections one source (IPv4 address, IPv6 /64) may hold without one
    /// of our client certificates [default: 64].
    #[arg(long, env = "CONNECT_PKI_MAX_CONNECTIONS_PER_SOURCE", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections_per_source: Option<u32>,
    /// Seconds after which a connection is asked to finish and reconnect [default: 600].
    #[arg(long, env = "CONNECT_PKI_MAX_CONNECTION_AGE_SECONDS", value_parser = clap::value_parser!(u32).range(10..=86400))]
    max_connection_age_seconds: Option<u32>,
    /// New HTTPS connections one source (IPv4 address, IPv6 /64) may open a
    /// minute, in bursts of a fifth of it; each costs a TLS handshake [default: 600].
    #[arg(long, env = "CONNECT_PKI_NEW_CONNECTIONS_PER_SOURCE_PER_MINUTE", value_parser = clap::value_parser!(u32).range(5..))]
    new_connections_per_source_per_minute: Option<u32>,
    /// Seconds a client has to send a request's headers [default: 10].
    #[arg(long, env = "CONNECT_PKI_HEADER_TIMEOUT_SECONDS", value_parser = clap::value_parser!(u32).range(1..=600))]
    header_timeout_seconds: Option<u32>,
    /// Seconds a connection may stay without a request before it is closed [default: 60].
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
    /// 行政管理課's telephone number, written on every page, code slip and
    /// e-mail that tells someone to call (night-time losses) [default: none,
    /// and the service warns at start].
    #[arg(long, env = "CONNECT_PKI_CITY_PHONE")]
    city_phone: Option<String>,
    /// When that number answers, e.g. "平日 8:30〜17:15（夜間・休日は当直）".
    #[arg(long, env = "CONNECT_PKI_CITY_PHONE_HOURS")]
    city_phone_hours: Option<String>,
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
    /// Rows of that record kept for clients no relying-party name covers;
    /// the least recently seen go first [default: 100000].
    #[arg(long, env = "CONNECT_PKI_RELYING_PARTY_UNNAMED_ROWS", value_parser = clap::value_parser!(u32).range(100..))]
    relying_party_unnamed_rows: Option<u32>,
    /// OCSP requests a minute from one client no relying-party name covers
    /// (an IPv4 address, an IPv6 /64); past it, tryLater [default: 1200].
    #[arg(long, env = "CONNECT_PKI_OCSP_RATE_LIMIT_PER_MINUTE", value_parser = clap::value_parser!(u32).range(1..))]
    ocsp_rate_limit_per_minute: Option<u32>,
    /// PEM certificate chain for the HTTPS listener (e.g. from the city's
    /// public CA) [default: the server certificate from our CA].
    #[arg(long, env = "CONNECT_PKI_TLS_CERT", requires = "tls_key")]
    #[serde(rename = "tls_cert_file")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (unencrypted) for --tls-cert.
    #[arg(long, env = "CONNECT_PKI_TLS_KEY", requires = "tls_cert")]
    #[serde(rename = "tls_key_file")]
    tls_key: Option<PathBuf>,
    /// HTTPS address the plain listener redirects pages to, e.g.
    /// https://pki.city.example [default: the requested host on the HTTPS port].
    #[arg(long, env = "CONNECT_PKI_HTTPS_URL")]
    https_url: Option<String>,
    /// A reverse proxy (address or network, repeatable) whose X-Forwarded-For
    /// and X-Forwarded-Proto are believed [default: none].
    #[arg(long = "trusted-proxy", env = "CONNECT_PKI_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    trusted_proxies: Vec<String>,
    /// Any key of config.toml, e.g. `--set expiry_notice_days=14` (repeatable;
    /// a flag of its own wins over it).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    #[serde(skip)]
    set: Vec<String>,
    /// Write {"public_addr", "api_addr"} here once listening (handy with port 0).
    #[arg(long)]
    #[serde(skip)]
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
                    (Some(module), Some(token)) => Some(Pkcs11Config {
                        module,
                        token,
                        pin_file: args.pkcs11_pin_file,
                        root_token: args.pkcs11_root_token,
                        root_pin_file: args.pkcs11_root_pin_file,
                    }),
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
        Command::Check(db) => return check(&db).await,
        Command::Audit { command: AuditCommand::Verify(db) } => return audit_verify(&db).await,
        Command::Receipt { command: ReceiptCommand::Verify { file, root, data_dir } } => {
            receipt::verify(&file, root.as_ref(), &data_dir)?;
        }
        Command::Ca { command: CaCommand::Rollover { db, csr_out, import } } => {
            ca_rollover(&db, csr_out, import).await?;
        }
        Command::Backup { dest, db } => backup(&dest, &db).await?,
        Command::Restore { src, crls, crl_from, accept_lost_revocations, db } => {
            let fetched = match &crl_from {
                Some(base) => connect_pki_server::admin::backup::fetch_current_crls(&src, base).await?,
                None => Vec::new(),
            };
            let published =
                connect_pki_server::admin::backup::Published { crls, fetched, accept_loss: accept_lost_revocations };
            restore(&src, &db, &published)?
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `connect-pki check`: no valid certificate that should have been revoked.
async fn check(db: &DbArgs) -> anyhow::Result<std::process::ExitCode> {
    let store = Store::connect(&database_url(db)?).await?;
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
    Ok(std::process::ExitCode::SUCCESS)
}

/// `connect-pki backup DEST`.
async fn backup(dest: &std::path::Path, db: &DbArgs) -> anyhow::Result<()> {
    let store = Store::connect(&database_url(db)?).await?;
    let dir = connect_pki_server::datadir::DataDir::new(&db.data_dir);
    let made = connect_pki_server::admin::backup::backup(&dir, &store, dest, time::OffsetDateTime::now_utc()).await;
    store.close().await;
    let made = made?;
    println!("backup written to {} ({} files from the data directory)", dest.display(), made.files.len());
    match &made.database {
        Some(db) => println!("database: {db} (a consistent snapshot)"),
        None => println!(
            "database: PostgreSQL is not in this backup; dump it now (owner-only, as the rest) with\n  (umask 077; pg_dump --format=custom --file {}/database.pgdump <database URL>)",
            dest.display()
        ),
    }
    if let Some(n) = made.crl_number {
        println!("newest CRL kept: number {n}");
    }
    Ok(())
}

/// `connect-pki restore SRC`.
fn restore(
    src: &std::path::Path,
    db: &DbArgs,
    published: &connect_pki_server::admin::backup::Published,
) -> anyhow::Result<()> {
    // The data directory may be gone (a lost machine): then the
    // backup's own settings say where the database is.
    let settings_from: &std::path::Path = if db.data_dir.join("config.toml").exists() { &db.data_dir } else { src };
    let file = FileConfig::load(settings_from)?;
    let url = db.database_url.clone().or(file.database_url).unwrap_or_else(|| default_database_url(&db.data_dir));
    let sqlite = connect_pki_server::config::sqlite_path(&url);
    let dir = connect_pki_server::datadir::DataDir::new(&db.data_dir);
    let done = connect_pki_server::admin::backup::restore(src, &dir, sqlite.as_deref(), published)?;
    if published.accept_loss && !done.kept_newer_crl {
        println!("WARNING: restored without a CRL newer than the backup: every revocation since it is lost");
    }
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
    Ok(())
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
            println!(
                "audit checkpoints MISSING: {} does not exist, so a log cut short cannot be told from a whole one \
                 (`serve` writes it at start, at intervals and at shutdown; put back the data directory's file)",
                path.display()
            );
            ok = false;
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
    use connect_pki_server::admin::rollover;
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
        action: connect_pki_domain::AuditAction::CaRollover,
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
