//! The issuance journal, `<data-dir>/crl/issued.jsonl`: one line for every
//! certificate this instance issued (enrollment, renewal), appended and
//! synced before the answer leaves. It sits beside the kept CRLs because it
//! answers the same question after a restore: what happened since the backup.
//! At start every journaled certificate the database lacks is recreated
//! (`Store::recreate_issued`); `restore` merges the data directory's journal
//! into the backup's instead of replacing it. Lines carry ids and the
//! certificate, no name or login.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, anyhow};
use base64::Engine;
use connect_pki_domain::{DeviceId, FacilityId, Serial, UserId};
use connect_pki_store::{DeviceRef, Issued, NewCertificate};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DataDir, create_private_dir, replace_file};

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    serial: String,
    ca_generation: i64,
    facility: i64,
    user: i64,
    device: i64,
    label: String,
    not_before: i64,
    not_after: i64,
    /// The certificate, base64 DER.
    der: String,
    /// Enrolled by a device-management system (lines written before
    /// issue 26 have none: by hand).
    #[serde(default)]
    managed: bool,
}

impl Line {
    fn of(i: &Issued) -> Self {
        Self {
            serial: i.cert.serial.to_hex(),
            ca_generation: i.cert.ca_generation,
            facility: i.device.facility.0,
            user: i.device.user.0,
            device: i.device.device.0,
            label: i.label.clone(),
            not_before: i.cert.not_before.unix_timestamp(),
            not_after: i.cert.not_after.unix_timestamp(),
            der: base64::engine::general_purpose::STANDARD.encode(&i.cert.der),
            managed: i.device.managed,
        }
    }

    fn issued(self) -> anyhow::Result<Issued> {
        let time = |s: i64| OffsetDateTime::from_unix_timestamp(s).map_err(|e| anyhow!("time {s}: {e}"));
        Ok(Issued {
            device: DeviceRef {
                facility: FacilityId(self.facility),
                user: UserId(self.user),
                device: DeviceId(self.device),
                login_id: String::new(),
                managed: self.managed,
                // Only signing reads a facility's lifetimes; a restore signs nothing.
                lifetimes: Default::default(),
            },
            label: self.label,
            cert: NewCertificate {
                serial: self.serial.parse::<Serial>().map_err(|e| anyhow!("serial {}: {e}", self.serial))?,
                der: base64::engine::general_purpose::STANDARD.decode(&self.der)?,
                not_before: time(self.not_before)?,
                not_after: time(self.not_after)?,
                ca_generation: self.ca_generation,
            },
        })
    }
}

impl DataDir {
    /// The issuance journal of this data directory.
    pub(crate) fn journal(&self) -> PathBuf {
        self.kept_crls().join("issued.jsonl")
    }
}

/// The journal open for appending; one append at a time.
#[derive(Debug)]
pub(crate) struct FileJournal(Mutex<std::fs::File>);

impl FileJournal {
    /// Opens (or creates, 0600) the journal of `dir`. A last line cut short
    /// by a crash is ended, so the next one starts on a line of its own.
    pub(crate) fn open(dir: &DataDir) -> anyhow::Result<Self> {
        let path = dir.journal();
        create_private_dir(&dir.kept_crls())?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        file.sync_all()?;
        std::fs::File::open(dir.kept_crls())?.sync_all()?;
        Ok(Self(Mutex::new(file)))
    }
}

impl connect_pki_ra::IssuanceJournal for FileJournal {
    fn record(&self, issued: &Issued) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(&Line::of(issued))?;
        line.push('\n');
        let mut file = self.0.lock().map_err(|_| anyhow!("the journal's lock was poisoned"))?;
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        Ok(())
    }
}

/// Every issuance in the journal at `path`, oldest first (none if there is
/// no journal). A line that cannot be read is skipped and logged: a crash
/// mid-append leaves at most the last one cut short.
pub(crate) fn read(path: &Path) -> anyhow::Result<Vec<Issued>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str::<Line>(line).map_err(anyhow::Error::from).and_then(Line::issued) {
            Ok(issued) => out.push(issued),
            Err(e) => {
                tracing::warn!(line = n + 1, error = %e, path = %path.display(), "an unreadable journal line was skipped")
            }
        }
    }
    Ok(out)
}

/// Adds to the journal at `into` every line of the journal at `from` whose
/// serial it lacks (a restore: the data directory's journal is newer than
/// the backup's).
pub(crate) fn merge(from: &Path, into: &Path) -> anyhow::Result<()> {
    let Ok(theirs) = std::fs::read_to_string(from) else { return Ok(()) };
    let mut ours = std::fs::read_to_string(into).unwrap_or_default();
    let serial = |line: &str| serde_json::from_str::<Line>(line).ok().map(|l| l.serial);
    let known: BTreeSet<String> = ours.lines().filter_map(serial).collect();
    let missing: Vec<&str> = theirs.lines().filter(|l| serial(l).is_some_and(|s| !known.contains(&s))).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !ours.is_empty() && !ours.ends_with('\n') {
        ours.push('\n');
    }
    for line in missing {
        ours.push_str(line);
        ours.push('\n');
    }
    if let Some(dir) = into.parent() {
        create_private_dir(dir)?;
    }
    replace_file(into, ours.as_bytes(), 0o600)
}
