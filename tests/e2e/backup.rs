//! Backups that never un-revoke (issue 12): back up the running service,
//! revoke X, restore the backup, start — X stays refused by the handshake,
//! by `openssl ocsp` and on the CRL, whose number went up. On PostgreSQL the
//! database goes through `pg_dump` and `pg_restore`, as docs/operations/backup-restore.md says.

use std::path::Path;

use connect_pki_e2e::fixtures::device;
use connect_pki_e2e::{Backend, Server, binary, both_backends, text};
use serde_json::Value;

use crate::revocation::{crl, crl_lists_it, handshake_ok, ocsp_status, revoke};

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `connect-pki <args> --data-dir … [--database-url …]`, which must succeed.
/// Every file under `dir` is 0600 or stricter, every directory 0700.
fn assert_owner_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).expect("the backup") {
        let entry = entry.expect("an entry");
        let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
        if entry.file_type().expect("type").is_dir() {
            assert_owner_only(&entry.path());
        }
    }
}

fn cli(s: &Server, args: &[&str]) -> String {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--data-dir".into(), path(&s.data_dir)]);
    if s.db.backend() == Backend::Postgres {
        all.extend(["--database-url".into(), s.db.url.clone()]);
    }
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = s.run(&path(binary()), &all);
    assert!(out.status.success(), "connect-pki {args:?}: {}", text(&out));
    text(&out)
}

async fn a_restored_backup_never_brings_a_revoked_certificate_back(backend: Backend) {
    let mut s = Server::start(backend).await;
    let admin = s.admin_pem();
    let x = device(&s, &admin, "backup-x");
    let y = device(&s, &admin, "backup-y");
    assert!(handshake_ok(&s, &x.pem));

    // Online: the service keeps running through the backup.
    let dest = s.scratch("backup");
    let said = cli(&s, &["backup", &path(&dest)]);
    // A backup holds the CA keys (encrypted), the database and the audit
    // log: nothing it writes is readable by anyone but its owner.
    assert_owner_only(&dest);
    if backend == Backend::Postgres {
        assert!(said.contains("pg_dump"), "{said}");
        let dump = path(&dest.join("database.pgdump"));
        let o = s.run("pg_dump", &["--format=custom", "--file", &dump, &s.db.url]);
        assert!(o.status.success(), "pg_dump: {}", text(&o));
    } else {
        assert!(dest.join("connect-pki.db").exists(), "{said}");
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dest.join("backup.json")).expect("manifest")).expect("JSON");
    assert!(manifest["files"].as_array().is_some_and(|f| f.iter().any(|f| f == "ca/issuing.key.pem")), "{manifest}");
    assert!(handshake_ok(&s, &x.pem), "the backup disturbed the running service");

    // After the backup: X is revoked; Z and W are enrolled (the backup
    // never saw them), and Z is revoked too.
    let z = device(&s, &admin, "backup-z");
    let w = device(&s, &admin, "backup-w");
    let before = crl(&s);
    let (status, body) = revoke(&s, &admin, &x.serial, "keyCompromise");
    assert_eq!(status, 200, "{body}");
    crl_lists_it(&s, &x, &before);
    let (status, body) = revoke(&s, &admin, &z.serial, "keyCompromise");
    assert_eq!(status, 200, "{body}");
    let revoked_number = crl(&s)["crl_number"].as_u64().expect("number");
    s.stop();

    // The backup goes back in place: its database still has X valid.
    if backend == Backend::Postgres {
        let dump = path(&dest.join("database.pgdump"));
        let o = s.run("pg_restore", &["--clean", "--if-exists", "--no-owner", "--dbname", &s.db.url, &dump]);
        assert!(o.status.success(), "pg_restore: {}", text(&o));
    }
    let said = cli(&s, &["restore", &path(&dest)]);
    assert!(said.contains("kept the data directory's newer CRL"), "{said}");
    // The replaced data directory is kept aside, whole.
    let aside = std::fs::read_dir(s.dir.path())
        .expect("ls")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("data.before-restore-"))
        .map(|e| e.path())
        .expect("the replaced data directory is kept");
    assert!(aside.join("ca/root.pem").exists() && said.contains(&aside.display().to_string()), "{said}");
    assert!(
        !std::fs::read_dir(s.dir.path())
            .expect("ls")
            .filter_map(Result::ok)
            .any(|e| { e.file_name().to_string_lossy().contains(".restoring-") })
    );

    s.spawn(&[]);
    assert!(s.log_contains("older than the newest CRL"), "{}", s.log());
    assert!(!handshake_ok(&s, &x.pem), "X came back with the backup");
    assert_eq!(ocsp_status(&s, &x.pem), "revoked keyCompromise");
    let after = crl(&s);
    assert_eq!(after["revoked"][&x.serial], "key_compromise", "{after}");
    assert!(after["crl_number"].as_u64().expect("number") > revoked_number, "CRL number did not go up: {after}");
    crl_lists_it(&s, &x, &before);
    // Z, whose row the restored database never had, stays revoked
    // everywhere: its revocation is kept from the published CRL.
    assert!(!handshake_ok(&s, &z.pem), "Z, revoked after the backup, came back");
    assert_eq!(ocsp_status(&s, &z.pem), "revoked keyCompromise");
    assert_eq!(after["revoked"][&z.serial], "key_compromise", "{after}");
    // W, enrolled after the backup and still valid, is back from the
    // issuance journal with its device and user: it works, it can be
    // revoked, and neither its ids nor Z's are handed out again.
    assert!(s.log_contains("put back from the issuance journal"), "{}", s.log());
    assert!(handshake_ok(&s, &w.pem), "W, issued after the backup, was not put back:\n{}", s.log());
    let v = device(&s, &admin, "backup-v");
    assert!(
        v.device_id > w.device_id && v.user_id > w.user_id,
        "an id of a certificate issued after the backup was handed out again: device {} user {} after W's {} {}",
        v.device_id,
        v.user_id,
        w.device_id,
        w.user_id
    );
    let (status, body) = revoke(&s, &admin, &w.serial, "keyCompromise");
    assert_eq!(status, 200, "W could not be revoked: {body}");
    assert!(!handshake_ok(&s, &w.pem), "W was revoked and still got in");
    assert_eq!(ocsp_status(&s, &w.pem), "revoked keyCompromise");
    // Y, untouched since the backup, works as before.
    assert!(handshake_ok(&s, &y.pem));
    assert_eq!(ocsp_status(&s, &y.pem), "good");
    // The audit log says what happened.
    let (status, audit) = s.api("GET", "/api/v1/audit?action=crl.reapply", Some(&admin), None);
    assert_eq!(status, 200, "{audit}");
    let record = audit.as_array().and_then(|r| r.first()).cloned().unwrap_or_default();
    assert!(record.to_string().contains(&x.serial), "{audit}");

    // Started again, nothing more is re-applied.
    s.stop();
    s.spawn(&[]);
    assert_eq!(s.log().matches("older than the newest CRL").count(), 1, "{}", s.log());
    assert_eq!(s.log().matches("put back from the issuance journal").count(), 1, "{}", s.log());
    // The restored audit log is a valid chain, but it lost the records
    // written after the backup: the checkpoints taken since were merged,
    // not replaced, so `audit verify` says the log was cut.
    s.stop();
    let mut args = vec!["audit".to_string(), "verify".into(), "--data-dir".into(), path(&s.data_dir)];
    if backend == Backend::Postgres {
        args.extend(["--database-url".into(), s.db.url.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = s.run(&path(binary()), &args);
    let said = text(&o);
    assert!(!o.status.success(), "audit verify called a log cut by the restore whole: {said}");
    assert!(said.contains("hash chain intact") && said.contains("truncated or its newest records deleted"), "{said}");
}
both_backends!(a_restored_backup_never_brings_a_revoked_certificate_back);

/// `restore` refuses what is not a backup, and a SQLite database a service
/// still has open (its write-ahead log is there); `backup` refuses to write
/// into a directory that holds anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_refuse_what_would_lose_data() {
    let mut s = Server::start(Backend::Sqlite).await;
    let dest = s.scratch("backup");
    cli(&s, &["backup", &path(&dest)]);
    let bin = path(binary());
    let data = path(&s.data_dir);
    let o = s.run(&bin, &["backup", &path(&dest), "--data-dir", &data]);
    assert!(!o.status.success() && text(&o).contains("not empty"), "{}", text(&o));
    let o = s.run(&bin, &["restore", &path(&s.dir.path().join("nothing")), "--data-dir", &data]);
    assert!(!o.status.success() && text(&o).contains("not a backup"), "{}", text(&o));
    // The service is running: its database has a write-ahead log.
    let o = s.run(&bin, &["restore", &path(&dest), "--data-dir", &data]);
    assert!(!o.status.success() && text(&o).contains("stop the service first"), "{}", text(&o));
    s.stop();
    let o = s.run(&bin, &["restore", &path(&dest), "--data-dir", &data]);
    assert!(o.status.success(), "{}", text(&o));

    // A kept CRL that our CA did not sign stops the start, saying why.
    std::fs::write(s.data("crl/issuing.crl"), b"not a CRL").expect("write");
    let o = std::process::Command::new(binary())
        .args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir", &data])
        .output()
        .expect("runs");
    assert!(!o.status.success() && text(&o).contains("is not a CRL of our issuing CA"), "{}", text(&o));
}

/// A lost machine: the data directory is gone, and its kept CRL with it.
/// `restore` refuses to restore without being told what was revoked since
/// the backup, and refuses a CRL our CA did not sign; given the CRL the
/// service served (downloaded from it, or from the public URL), every
/// revocation since the backup stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_onto_a_lost_machine_needs_the_current_crl() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let v = device(&s, &admin, "lost-machine-v");
    let dest = s.scratch("backup");
    cli(&s, &["backup", &path(&dest)]);
    let (status, body) = revoke(&s, &admin, &v.serial, "keyCompromise");
    assert_eq!(status, 200, "{body}");
    let current = s.scratch("current.crl");
    let (_, code, _) = s.curl_public("/crl/issuing.crl", &["-o", &path(&current)]);
    assert_eq!(code, 200);
    s.stop();
    std::fs::rename(&s.data_dir, s.dir.path().join("data.lost-machine")).expect("the machine is lost");

    let (bin, data) = (path(binary()), path(&s.data_dir));
    let o = s.run(&bin, &["restore", &path(&dest), "--data-dir", &data]);
    let said = text(&o);
    assert!(!o.status.success() && said.contains("--crl FILE") && said.contains("--accept-lost-revocations"), "{said}");
    assert!(!s.data_dir.exists(), "a refused restore left a data directory");
    let junk = s.scratch("junk.crl");
    std::fs::write(&junk, b"not a CRL").expect("write");
    let o = s.run(&bin, &["restore", &path(&dest), "--crl", &path(&junk), "--data-dir", &data]);
    assert!(!o.status.success() && text(&o).contains("is not a CRL signed"), "{}", text(&o));

    cli(&s, &["restore", &path(&dest), "--crl", &path(&current)]);
    s.spawn(&[]);
    assert!(!handshake_ok(&s, &v.pem), "V, revoked after the backup, came back");
    assert_eq!(ocsp_status(&s, &v.pem), "revoked keyCompromise");
    assert_eq!(crl(&s)["revoked"][&v.serial], "key_compromise");
}

/// The same onto a new machine, with the current CRLs fetched from a running
/// instance (`--crl-from`, as from the public URL) instead of downloaded by
/// hand; an address that serves no CRL of ours stops the restore.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_fetches_the_current_crl_from_a_running_instance() {
    let mut s = Server::start(Backend::Sqlite).await;
    let admin = s.admin_pem();
    let v = device(&s, &admin, "fetched-v");
    let dest = s.scratch("backup");
    cli(&s, &["backup", &path(&dest)]);
    let (status, body) = revoke(&s, &admin, &v.serial, "keyCompromise");
    assert_eq!(status, 200, "{body}");
    let bin = path(binary());
    let nowhere = s.dir.path().join("data.nowhere");
    let o = s.run(&bin, &["restore", &path(&dest), "--crl-from", "http://127.0.0.1:9", "--data-dir", &path(&nowhere)]);
    assert!(!o.status.success() && text(&o).contains("fetching the current CRL"), "{}", text(&o));
    assert!(!nowhere.exists(), "a refused restore left a data directory");
    let new_machine = s.dir.path().join("data.new-machine");
    let from = format!("http://{}", s.public);
    let o = s.run(&bin, &["restore", &path(&dest), "--crl-from", &from, "--data-dir", &path(&new_machine)]);
    assert!(o.status.success(), "{}", text(&o));
    s.stop();
    s.data_dir = new_machine;
    s.spawn(&[]);
    assert!(!handshake_ok(&s, &v.pem), "V, revoked after the backup, came back");
    assert_eq!(ocsp_status(&s, &v.pem), "revoked keyCompromise");
    assert_eq!(crl(&s)["revoked"][&v.serial], "key_compromise");
}

/// A backup taken before `ca rollover` lacks the new issuing CA: restored,
/// nothing would publish that CA's CRL or answer OCSP for what it issued.
/// `restore` refuses it, naming the generation, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_from_before_a_rollover_is_refused() {
    let mut s = Server::start(Backend::Sqlite).await;
    let dest = s.scratch("backup");
    cli(&s, &["backup", &path(&dest)]);
    s.stop();
    cli(&s, &["ca", "rollover"]);
    let (bin, data) = (path(binary()), path(&s.data_dir));
    let o = s.run(&bin, &["restore", &path(&dest), "--data-dir", &data]);
    let said = text(&o);
    assert!(!o.status.success() && said.contains("issuing-2") && said.contains("ca rollover"), "{said}");
    assert!(s.data("ca/issuing-2.pem").exists(), "the refused restore changed the data directory");
}
