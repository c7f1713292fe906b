//! `connect-pki serve`: the settings laid over one another (the defaults,
//! config.toml, `--set`, then flags and environment), and init's report.

use std::sync::Arc;

use connect_pki_domain::SystemClock;
use connect_pki_server::config::{DEFAULT_PUBLIC_URL, FileConfig};
use connect_pki_server::{InitOptions, InitReport, ServeConfig};

use crate::ServeArgs;

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

/// The defaults, then config.toml, then `--set`, then the flags and
/// environment: the last one given wins.
fn config_of(args: ServeArgs, file: FileConfig) -> anyhow::Result<ServeConfig> {
    let mut set = FileConfig::default();
    for assignment in &args.set {
        set = FileConfig::setting(assignment)?.over(set)?;
    }
    let flags: FileConfig = toml::Table::try_from(&args)?.try_into()?;
    let mut config = ServeConfig::resolve(&args.db.data_dir, file, flags.over(set)?)?;
    config.ready_file = args.ready_file;
    Ok(config)
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
    println!("  root key            {}", r.root_key);
    println!();
    println!("First administrator ({}), certificate serial {}:", r.bootstrap.login_id, r.bootstrap.serial);
    println!("  PKCS#12 file        {}", r.bootstrap.pkcs12_path.display());
    println!("  PKCS#12 password    {}", r.bootstrap.pkcs12_password);
    println!("  The password is shown only this once; it is not stored.");
    Ok(())
}
