//! The Debian package (issue 13): built with cargo-deb, installed on this
//! machine with `dpkg -i`, started as its service user with the installed
//! unit's own command line and environment file, upgraded with a local edit
//! of the conffile kept and the CA kept, and purged.
//!
//! It changes the machine (a system user, /usr/bin, /etc, /var/lib), as a
//! package does; it leaves nothing once purged. It needs root and dpkg, which
//! the README's test command has on a machine of this kind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use connect_pki_e2e::{Spawned, run, text, workspace};

const UNIT: &str = "/lib/systemd/system/connect-pki.service";
const ENV_FILE: &str = "/etc/connect-pki/connect-pki.env";

fn sh(cmd: &str) -> (bool, String) {
    let o = Command::new("sh").args(["-c", cmd]).output().expect("sh runs");
    (o.status.success(), text(&o))
}

/// `cargo deb` for this workspace, with the debug build the tests already
/// made (a release build would double the suite's time), as version `version`.
fn build_deb(out: &Path, version: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let path = out.join(format!("connect-pki_{version}.deb"));
    let o = Command::new(cargo)
        .args(["deb", "-p", "connect-pki", "--profile", "dev", "--no-strip", "--deb-version", version, "--output"])
        .arg(&path)
        .current_dir(workspace())
        .output()
        .expect("cargo deb runs (the README's test command installs cargo-deb)");
    assert!(o.status.success(), "cargo deb: {}", text(&o));
    path
}

/// The installed unit's User= and ExecStart=, and the settings of its
/// EnvironmentFile=: what systemd would run.
fn unit_command() -> (String, Vec<String>, Vec<(String, String)>) {
    let unit = std::fs::read_to_string(UNIT).expect("the unit is installed");
    let value =
        |key: &str| unit.lines().find_map(|l| l.strip_prefix(key)).map(str::trim).map(str::to_string).expect(key);
    let user = value("User=");
    let exec: Vec<String> = value("ExecStart=").split_whitespace().map(str::to_string).collect();
    assert_eq!(value("EnvironmentFile="), ENV_FILE);
    let env = std::fs::read_to_string(ENV_FILE)
        .expect("the environment file")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (user, exec, env)
}

/// Starts the unit's command as its user (runuser, as systemd's User=) and
/// waits for /healthz on `port`.
/// runuser and the service under it are one process group, stopped together.
fn start(port: u16, log: &Path) -> Spawned {
    let (user, exec, env) = unit_command();
    let log = std::fs::File::create(log).expect("log");
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", &user, "--"])
        .args(&exec)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env)
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log));
    // The unit's environment only, but for the mark tests/run looks for.
    connect_pki_e2e::process::keep_run_mark(&mut cmd);
    let service = Spawned::start(&mut cmd).expect("runuser runs");
    let deadline = Instant::now() + Duration::from_secs(90);
    let url = format!("http://127.0.0.1:{port}/healthz");
    loop {
        let o = run("curl", &["-sf", "--max-time", "2", &url], Path::new("/"));
        if o.status.success() {
            return service;
        }
        assert!(Instant::now() < deadline, "the packaged service did not answer on {url}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn root_fingerprint() -> String {
    let o = run(
        "openssl",
        &["x509", "-in", "/var/lib/connect-pki/data/ca/root.pem", "-noout", "-fingerprint"],
        Path::new("/"),
    );
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

#[test]
fn the_debian_package_installs_runs_upgrades_and_purges() {
    assert!(sh("[ \"$(id -u)\" = 0 ] && command -v dpkg").0, "this test installs a package: it needs root and dpkg");
    let _ = sh("dpkg --purge connect-pki");
    let dir = tempfile::tempdir().expect("tempdir");
    let first = build_deb(dir.path(), "0.1.0-1");
    let second = build_deb(dir.path(), "0.1.0-2");
    let (ok, info) = sh(&format!("dpkg-deb --info {0} && dpkg-deb --contents {0}", first.display()));
    assert!(ok, "{info}");
    for want in ["usr/bin/connect-pki", "lib/systemd/system/connect-pki.service", "etc/connect-pki/connect-pki.env"] {
        assert!(info.contains(want), "{want} not in the package: {info}");
    }
    let (ok, conffiles) = sh(&format!("dpkg-deb --ctrl-tarfile {} | tar -xO ./conffiles", first.display()));
    assert!(ok && conffiles.contains(ENV_FILE), "{conffiles}");

    let (ok, out) = sh(&format!("dpkg -i {}", first.display()));
    assert!(ok, "dpkg -i: {out}");
    let (ok, out) = sh("id connect-pki && stat -c '%U %a' /var/lib/connect-pki");
    assert!(ok && out.contains("connect-pki 700"), "{out}");
    // The administrator edits the settings: free ports for this machine.
    let (public, api) = (crate::nginx::free_port(), crate::nginx::free_port());
    let edited = std::fs::read_to_string(ENV_FILE)
        .expect("env")
        .replace("0.0.0.0:8080", &format!("127.0.0.1:{public}"))
        .replace("0.0.0.0:8443", &format!("127.0.0.1:{api}"));
    std::fs::write(ENV_FILE, &edited).expect("edit the conffile");

    // The first start initialises the data directory, as the service user.
    let service = start(public, &dir.path().join("first.log"));
    let (ok, out) = sh("stat -c '%U %a' /var/lib/connect-pki/data /var/lib/connect-pki/data/ca/issuing.key.pem");
    assert!(ok && out.lines().all(|l| l.starts_with("connect-pki")), "{out}");
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap_or_default();
    assert!(log.contains("admin.p12"), "the first start did not print the administrator's PKCS#12: {log}");
    let (code, _) = sh(&format!("curl -sf --max-time 5 http://127.0.0.1:{public}/crl/issuing.crl -o /dev/null"));
    assert!(code, "the CRL is not served");
    let fingerprint = root_fingerprint();
    drop(service);

    // Upgrade: the local edit of the conffile and the CA stay.
    let (ok, out) = sh(&format!("dpkg -i --force-confold {}", second.display()));
    assert!(ok, "dpkg -i (upgrade): {out}");
    let (_, version) = sh("dpkg-query -W -f '${Version}' connect-pki");
    assert_eq!(version.trim(), "0.1.0-2");
    assert_eq!(std::fs::read_to_string(ENV_FILE).expect("env"), edited, "the upgrade replaced the edited conffile");
    let service = start(public, &dir.path().join("second.log"));
    assert_eq!(root_fingerprint(), fingerprint, "the upgrade lost the CA");
    drop(service);

    // Purge: nothing of it is left.
    let (ok, out) = sh("dpkg --purge connect-pki");
    assert!(ok, "dpkg --purge: {out}");
    for gone in ["/usr/bin/connect-pki", UNIT, "/etc/connect-pki", "/var/lib/connect-pki"] {
        assert!(!Path::new(gone).exists(), "{gone} is left after the purge");
    }
    assert!(!sh("getent passwd connect-pki").0, "the service user is left after the purge");
}
