//! Backups that never un-revoke.
//!
//! `connect-pki backup DEST` copies the data directory and, on SQLite, a
//! consistent snapshot of the database (`VACUUM INTO`) while the service
//! runs. A PostgreSQL database is dumped with `pg_dump` beside it (docs/operations/backup-restore.md).
//! `connect-pki restore SRC` puts a backup back in place.
//!
//! A backup is older than the moment it is restored, and anything revoked in
//! between must stay revoked. The service therefore keeps every CRL it signs
//! in `<data-dir>/crl/<ca>.crl` before serving it, `restore` never puts an
//! older one over a newer one, and at every start
//! [`reapply_published_crl`] compares the database with it: a database whose
//! CRL number is below the kept CRL's is behind it, so every revocation and
//! hold the CRL lists is applied again and the CRL number raised above it
//! (`Store::reapply_published`), in the log and the audit log.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use connect_pki_ca::IssuingCa;
use connect_pki_ca::crl::read_published;
use connect_pki_domain::Serial;
use connect_pki_store::{Backend, Listed, Store};
use serde::Serialize;
use time::OffsetDateTime;

use crate::datadir::{DataDir, SQLITE_FILE, create_private_dir, replace_file};

/// The file in a backup that says what it is.
pub(crate) const MANIFEST: &str = "backup.json";

impl DataDir {
    /// Where the newest CRL of each issuing CA is kept (`<ca name>.crl`).
    pub(crate) fn kept_crls(&self) -> PathBuf {
        self.path().join("crl")
    }

    /// The newest CRL this instance signed for the issuing CA named `ca`.
    pub(crate) fn kept_crl(&self, ca: &str) -> PathBuf {
        self.kept_crls().join(format!("{ca}.crl"))
    }
}

/// What a backup holds, written as its `backup.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Manifest {
    /// When the backup was taken (RFC 3339, UTC).
    pub taken_at: String,
    pub(crate) backend: String,
    /// The database snapshot in the backup (`connect-pki.db`), or `None`
    /// when the database is PostgreSQL and was dumped with `pg_dump`.
    pub database: Option<String>,
    /// The highest number among the kept CRLs the backup holds, if any.
    pub crl_number: Option<u64>,
    /// The data directory's files, relative to it.
    pub files: Vec<String>,
}

/// Copies the data directory into `dest` (a new directory, 0700) and, on
/// SQLite, snapshots the database into it.
pub async fn backup(dir: &DataDir, store: &Store, dest: &Path, now: OffsetDateTime) -> anyhow::Result<Manifest> {
    if dest.exists() && std::fs::read_dir(dest).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: a backup goes into a new directory", dest.display());
    }
    create_private_dir(dest)?;
    // The files first, then the database: the audit checkpoints copied then
    // must not name records the snapshot lacks (`audit verify` would call the
    // restored log cut short), and a kept CRL older than the snapshot is
    // what every start expects (a newer one is re-applied).
    let mut files = Vec::new();
    copy_tree(dir.path(), dest, Path::new(""), &mut files, &|rel| !is_database_file(rel), Some(0o600))?;
    let database = match store.backend() {
        Backend::Sqlite => {
            // Created first, owner-only: SQLite writes a snapshot into an
            // empty file and keeps its mode (its own would follow the umask).
            let snapshot = dest.join(SQLITE_FILE);
            crate::datadir::write_new(&snapshot, b"", 0o600)?;
            store.snapshot_into(&snapshot).await.context("snapshotting the SQLite database")?;
            Some(SQLITE_FILE.to_string())
        }
        Backend::Postgres => None,
    };
    let crl_number = newest_kept(&DataDir::new(dest)).into_values().map(|(n, _)| n).max();
    let manifest = Manifest {
        taken_at: now.format(&time::format_description::well_known::Rfc3339)?,
        backend: match store.backend() {
            Backend::Sqlite => "sqlite".into(),
            Backend::Postgres => "postgres".into(),
        },
        database,
        crl_number,
        files,
    };
    crate::datadir::write_new(&dest.join(MANIFEST), serde_json::to_string_pretty(&manifest)?.as_bytes(), 0o600)?;
    Ok(manifest)
}

/// What `restore` knows of the CRLs published since the backup, besides the
/// data directory's kept ones.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The newest CRL of each issuing CA (DER or PEM files), e.g. downloaded
    /// from a running instance or the public URL.
    pub crls: Vec<PathBuf>,
    /// The same, fetched by [`fetch_current_crls`]: (where from, bytes).
    pub fetched: Vec<(String, Vec<u8>)>,
    /// Restore even when nothing says what was revoked since the backup:
    /// every such revocation is lost.
    pub accept_loss: bool,
}

/// What [`restore`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub manifest: Manifest,
    /// The database file written, when the backup holds one.
    pub database: Option<PathBuf>,
    /// The highest number among the kept CRLs now in the data directory.
    pub crl_number: Option<u64>,
    /// Whether a kept CRL of the data directory was newer than the backup's,
    /// and stayed.
    pub kept_newer_crl: bool,
    /// Where the data directory that was replaced now is (kept, not deleted).
    pub previous: Option<PathBuf>,
}

/// Puts the backup `src` in place as `dir` (which may not exist yet, after a
/// lost machine); the directory it replaces is kept beside it. The service
/// must be stopped: a `serve` holding the data directory's `serve.lock`
/// makes it refuse. The data directory's kept CRLs are never replaced
/// by older ones.
pub fn restore(src: &Path, dir: &DataDir, sqlite: Option<&Path>, published: &Published) -> anyhow::Result<Restored> {
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(src.join(MANIFEST)).with_context(|| {
            format!("{} is not a backup made by `connect-pki backup` (no {MANIFEST})", src.display())
        })?)
        .with_context(|| format!("{} is damaged", src.join(MANIFEST).display()))?;
    let target_db = match (&manifest.database, sqlite) {
        (Some(_), None) => bail!("the backup holds a SQLite database, but the service is configured for PostgreSQL"),
        (Some(name), Some(path)) => Some((src.join(name), path.to_path_buf())),
        (None, _) => None,
    };
    if dir.is_served()? {
        bail!("connect-pki serve is running on {}: stop the service first (every instance)", dir.path().display());
    }
    let theirs = DataDir::new(src).generations();
    let newer: Vec<String> = dir
        .generations()
        .into_iter()
        .filter(|g| !theirs.contains(g))
        .map(connect_pki_ca::issue::name_of_generation)
        .collect();
    if !newer.is_empty() {
        bail!(
            "the data directory has issuing CA {} that the backup (taken at {}) lacks: it was taken before \
             `ca rollover`. Restored, the service would no longer publish their CRLs or answer OCSP for what \
             they issued, so their revocations could not be checked. Restore a backup taken after the rollover",
            newer.join(", "),
            manifest.taken_at
        );
    }
    // The restored directory is put together beside the data directory and
    // swapped in whole: a failure on the way leaves the data directory as it
    // was, and the one it replaces stays aside, not deleted.
    let parent = dir.path().parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let stamp = OffsetDateTime::now_utc().unix_timestamp();
    let staging = DataDir::new(parent.join(format!(".{name}.restoring-{stamp}")));
    let aside = parent.join(format!("{name}.before-restore-{stamp}"));
    let staged = stage(src, dir, &staging, target_db.as_ref(), published, &manifest);
    let kept_newer_crl = match staged {
        Ok(kept) => kept,
        Err(e) => {
            let _ = std::fs::remove_dir_all(staging.path());
            return Err(e);
        }
    };
    let replaced = dir.path().exists();
    if replaced {
        std::fs::rename(dir.path(), &aside)
            .with_context(|| format!("moving {} aside to {}", dir.path().display(), aside.display()))?;
    }
    std::fs::rename(staging.path(), dir.path()).with_context(|| {
        format!("moving the restored {} into place (the old one is {})", staging.path().display(), aside.display())
    })?;
    let database = match target_db {
        Some((_, to)) if to.starts_with(dir.path()) => Some(to),
        Some((from, to)) => {
            // A database outside the data directory is replaced in place; a
            // log or shared-memory file of the one replaced would be read as
            // part of the restored one.
            for stale in [wal_of(&to), shm_of(&to)] {
                if stale.exists() {
                    std::fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
                }
            }
            let bytes = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
            replace_file(&to, &bytes, 0o600)?;
            Some(to)
        }
        None => None,
    };
    let crl_number = newest_kept(dir).into_values().map(|(n, _)| n).max();
    Ok(Restored { manifest, database, crl_number, kept_newer_crl, previous: replaced.then_some(aside) })
}

/// The backup's files in `staging`, the data directory's kept CRLs where
/// newer, and a SQLite database kept inside the data directory; returns
/// whether a newer kept CRL was carried over.
fn stage(
    src: &Path,
    dir: &DataDir,
    staging: &DataDir,
    db: Option<&(PathBuf, PathBuf)>,
    published: &Published,
    manifest: &Manifest,
) -> anyhow::Result<bool> {
    create_private_dir(staging.path())?;
    let mut files = Vec::new();
    let wanted = |rel: &Path| rel != Path::new(MANIFEST) && !is_database_file(rel);
    copy_tree(src, staging.path(), Path::new(""), &mut files, &wanted, None)?;
    let ours = newest_kept(dir);
    if ours.is_empty() && published.crls.is_empty() && published.fetched.is_empty() && !published.accept_loss {
        bail!(
            "{} holds no kept CRL, so nothing here says what was revoked after the backup was taken ({}): \
             restoring would bring back every certificate revoked since. Give the newest CRL of each issuing CA \
             with --crl FILE, or fetch them from a running instance or the public URL with \
             --crl-from http://<public address>, or, accepting that every revocation since the backup is \
             lost, --accept-lost-revocations",
            dir.path().display(),
            manifest.taken_at
        );
    }
    let mut newer = ours;
    let mut given = Vec::new();
    for file in &published.crls {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        given.push((file.display().to_string(), bytes));
    }
    for (from, bytes) in given.iter().chain(&published.fetched) {
        let (ca, number, der) = published_crl(staging, from, bytes)?;
        if newer.get(&ca).is_none_or(|(n, _)| *n < number) {
            newer.insert(ca, (number, der));
        }
    }
    merge_checkpoints(dir, staging)?;
    // What was issued after the backup, so a start can put it back.
    crate::datadir::journal::merge(&dir.journal(), &staging.journal())?;
    let theirs = newest_kept(staging);
    let mut kept_newer_crl = false;
    for (ca, (number, der)) in newer {
        if theirs.get(&ca).is_none_or(|(b, _)| *b < number) {
            create_private_dir(&staging.kept_crls())?;
            replace_file(&staging.kept_crl(&ca), &der, 0o644)?;
            kept_newer_crl = true;
        }
    }
    if let Some((from, to)) = db
        && let Ok(rel) = to.strip_prefix(dir.path())
    {
        let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        replace_file(&staging.path().join(rel), &bytes, 0o600)?;
    }
    Ok(kept_newer_crl)
}

/// At start, before the index is loaded: re-applies the kept CRLs to a
/// database that is behind them (see the module documentation). A kept CRL
/// its issuing CA did not sign stops the start: it cannot be trusted to say
/// what was revoked, and ignoring it could bring a revoked certificate back.
pub(crate) async fn reapply_published_crl(
    dir: &DataDir,
    cas: &[std::sync::Arc<IssuingCa>],
    store: &Store,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let mut listed: Vec<Listed> = Vec::new();
    let mut number = None;
    for ca in cas {
        let path = dir.kept_crl(&ca.name());
        let der = match std::fs::read(&path) {
            Ok(der) => der,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let crl = read_published(&der, ca.cert_der()).map_err(|e| {
            anyhow!(
                "{} is not a CRL of our issuing CA ({e}); move it aside only if you know where it came from",
                path.display()
            )
        })?;
        listed.extend(crl.entries.iter().filter_map(|e| {
            Serial::from_bytes(&e.serial).ok().map(|serial| Listed {
                serial,
                reason: e.reason,
                revoked_at: e.revoked_at,
                ca_generation: i64::from(ca.generation()),
                expires_by: ca.not_after(),
            })
        }));
        number = number.max(Some(crl.number));
    }
    let Some(number) = number else { return Ok(()) };
    let number = i64::try_from(number).context("CRL number")?;
    let done = store.reapply_published(number, &listed, now).await?;
    if let Some(before) = done.raised_from {
        tracing::warn!(
            crl_number = number,
            database_crl_number = before,
            reapplied = done.changed.len(),
            unknown = done.unknown.len(),
            serials = %done.changed.iter().map(Serial::to_hex).collect::<Vec<_>>().join(","),
            "the database is older than the newest CRL this service published (restored from a backup?): \
             its revocations were applied again and the CRL number raised above it"
        );
        if !done.unknown.is_empty() {
            tracing::error!(
                serials = %done.unknown.iter().map(Serial::to_hex).collect::<Vec<_>>().join(","),
                "the published CRL lists certificates this database never issued (issued after the backup): \
                 they are kept revoked as recovered revocations, and fail closed at the handshake"
            );
        }
    }
    Ok(())
}

/// The audit checkpoints of the data directory, merged into the backup's in
/// `staging` (never replaced by them): a checkpoint taken after the backup
/// names records the restored log lacks, and `audit verify` must say the log
/// was cut, not call it intact. Only when both carry the same MAC key (the
/// same installation); otherwise the backup's stand alone.
fn merge_checkpoints(dir: &DataDir, staging: &DataDir) -> anyhow::Result<()> {
    use crate::checkpoint::{CHECKPOINT_FILE, KEY_FILE};
    let key = |d: &DataDir| std::fs::read(d.path().join(KEY_FILE)).ok();
    let Ok(ours) = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)) else { return Ok(()) };
    let same_key = key(dir).is_some_and(|ours| key(staging).is_some_and(|theirs| ours == theirs));
    if !same_key {
        return Ok(());
    }
    let theirs = std::fs::read_to_string(staging.path().join(CHECKPOINT_FILE)).unwrap_or_default();
    let id = |line: &str| serde_json::from_str::<serde_json::Value>(line).ok().and_then(|v| v["id"].as_i64());
    let mut lines: Vec<&str> = theirs.lines().chain(ours.lines()).filter(|l| !l.trim().is_empty()).collect();
    lines.sort_by_key(|l| id(l).unwrap_or(i64::MAX));
    lines.dedup();
    let mut merged = lines.join("\n");
    merged.push('\n');
    replace_file(&staging.path().join(CHECKPOINT_FILE), merged.as_bytes(), 0o600)
}

/// A CRL given to `restore` (`from`: its file or URL): the issuing CA (of
/// those in `staging`) that signed it, its number and DER; one no issuing CA
/// of ours signed is refused, naming where it came from.
fn published_crl(staging: &DataDir, from: &str, bytes: &[u8]) -> anyhow::Result<(String, u64, Vec<u8>)> {
    let der = match x509_parser::pem::parse_x509_pem(bytes) {
        Ok((_, pem)) if pem.label == "X509 CRL" => pem.contents,
        _ => bytes.to_vec(),
    };
    for g in staging.generations() {
        let name = connect_pki_ca::issue::name_of_generation(g);
        let Ok(issuing) = std::fs::read_to_string(staging.ca(&format!("{name}.pem"))) else { continue };
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(issuing.as_bytes()) else { continue };
        if let Ok(crl) = read_published(&der, &pem.contents) {
            return Ok((name, crl.number, der));
        }
    }
    bail!("{from} is not a CRL signed by one of the backup's issuing CAs")
}

/// The CRL each issuing CA of the backup `src` serves now, fetched from a
/// running instance or the public URL (`base`, e.g. `http://pki.example`):
/// `<base>/crl/<ca>.crl`. Their signatures are checked when they are used, so
/// plain HTTP will do; a CA whose CRL cannot be fetched stops the restore.
pub async fn fetch_current_crls(src: &Path, base: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    use http_body_util::BodyExt;
    let mut base = url::Url::parse(base).with_context(|| format!("--crl-from {base:?} is not a URL"))?;
    anyhow::ensure!(matches!(base.scheme(), "http" | "https"), "--crl-from takes an http:// or https:// URL");
    if !base.path().ends_with('/') {
        // `join` would replace the last segment of http://host/pki.
        base.set_path(&format!("{}/", base.path()));
    }
    let base = &base;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .context("the system's TLS roots")?
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<hyper::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let mut out = Vec::new();
    for g in DataDir::new(src).generations() {
        let name = connect_pki_ca::issue::name_of_generation(g);
        let url = base.join(&format!("crl/{name}.crl")).with_context(|| format!("a URL under {base}"))?;
        let fetch = async {
            let uri: hyper::Uri = url.as_str().parse()?;
            let resp = client.get(uri).await?;
            let status = resp.status();
            anyhow::ensure!(status.is_success(), "HTTP {status}");
            // Read no more than a CRL can be: the address may not be ours.
            let body = http_body_util::Limited::new(resp.into_body(), MAX_FETCHED_CRL)
                .collect()
                .await
                .map_err(|e| anyhow!("{e} (a CRL is at most {MAX_FETCHED_CRL} bytes)"))?
                .to_bytes();
            anyhow::Ok(body.to_vec())
        };
        let bytes = tokio::time::timeout(std::time::Duration::from_secs(30), fetch)
            .await
            .map_err(|_| anyhow!("no answer within 30 s"))
            .and_then(|r| r)
            .with_context(|| format!("fetching the current CRL of {name} from {url}"))?;
        out.push((url.to_string(), bytes));
    }
    Ok(out)
}

/// The largest CRL `--crl-from` reads (100 000 entries are about 4 MB).
const MAX_FETCHED_CRL: usize = 64 * 1024 * 1024;

/// The kept CRLs in a data directory that their issuing CA (as the data
/// directory holds it) signed: CA name → (number, DER).
fn newest_kept(dir: &DataDir) -> std::collections::BTreeMap<String, (u64, Vec<u8>)> {
    let mut out = std::collections::BTreeMap::new();
    for g in dir.generations() {
        let name = connect_pki_ca::issue::name_of_generation(g);
        let Ok(der) = std::fs::read(dir.kept_crl(&name)) else { continue };
        let Ok(issuing) = std::fs::read_to_string(dir.ca(&format!("{name}.pem"))) else { continue };
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(issuing.as_bytes()) else { continue };
        if let Ok(crl) = read_published(&der, &pem.contents) {
            out.insert(name, (crl.number, der));
        }
    }
    out
}

/// The database and the locks of a running service: never copied as files.
fn is_database_file(rel: &Path) -> bool {
    rel.to_str().is_some_and(|r| r.starts_with(SQLITE_FILE) || r.ends_with(".lock"))
}

fn wal_of(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

fn shm_of(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-shm", db.display()))
}

/// Copies every regular file under `from` that `wanted` accepts into `to`,
/// keeping relative paths and permissions, or with mode `private` when given
/// (a backup: 0600, as it holds the encrypted CA keys, the database and the
/// audit log, whatever the data directory's files were); each file lands
/// whole (written beside and renamed).
fn copy_tree(
    from: &Path,
    to: &Path,
    rel: &Path,
    copied: &mut Vec<String>,
    wanted: &dyn Fn(&Path) -> bool,
    private: Option<u32>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let here = from.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&here)
        .with_context(|| format!("reading {}", here.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", here.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel = rel.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            create_private_dir(&to.join(&rel))?;
            copy_tree(from, to, &rel, copied, wanted, private)?;
        } else if kind.is_file() && wanted(&rel) {
            let src = from.join(&rel);
            let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            let mode = private.unwrap_or(entry.metadata()?.permissions().mode() & 0o777);
            replace_file(&to.join(&rel), &bytes, mode)?;
            copied.push(rel.display().to_string());
        }
    }
    Ok(())
}
