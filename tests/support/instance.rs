//! Further `serve` processes on one [`Server`]'s data directory and
//! database, for the tests that kill and restart instances.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Server, Spawned, binary};

/// One more `serve` process on a [`Server`]'s data directory and database
/// (PostgreSQL), with a log file of its own, that a test can SIGKILL and
/// start again (on new random ports) as often as it likes.
pub struct Instance {
    pub name: String,
    pub public: String,
    pub api: String,
    /// How many times it was started.
    pub starts: u32,
    child: Option<Spawned>,
    data_dir: PathBuf,
    scratch: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
}

impl Server {
    /// A further instance named `name` on this server's data directory (not
    /// started yet: call [`Instance::start`]). Its log is `<scratch>/<name>.log`.
    pub fn instance(&self, name: &str, env: &[(&str, &str)]) -> Instance {
        Instance {
            name: name.to_string(),
            public: String::new(),
            api: String::new(),
            starts: 0,
            child: None,
            data_dir: self.data_dir.clone(),
            scratch: self.dir.path().to_path_buf(),
            log: self.dir.path().join(format!("{name}.log")),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }
}

impl Instance {
    /// Starts `serve` and waits (up to `timeout`) until it is listening.
    /// Returns what went wrong otherwise (the process is then killed).
    pub fn start(&mut self, timeout: Duration) -> Result<(), String> {
        self.kill();
        let ready = self.scratch.join(format!("{}-ready.json", self.name));
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("log file: {e}"))?;
        let child = Spawned::start(
            Command::new(binary())
                .args(["serve", "--public-addr", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--data-dir"])
                .arg(&self.data_dir)
                .arg("--ready-file")
                .arg(&ready)
                .env("CONNECT_PKI_RATE_LIMIT_PER_MINUTE", "100000")
                .env("CONNECT_PKI_OCSP_RATE_LIMIT_PER_MINUTE", "10000000")
                .env("CONNECT_PKI_NEW_CONNECTIONS_PER_SOURCE_PER_MINUTE", "10000000")
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("CONNECT_PKI_LOG", "info")
                .stdout(log.try_clone().map_err(|e| format!("log file: {e}"))?)
                .stderr(log),
        )
        .map_err(|e| format!("{} does not start: {e}", self.name))?;
        self.child = Some(child);
        self.starts += 1;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = std::fs::read(&ready).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
                self.public = v["public_addr"].as_str().unwrap_or_default().to_string();
                self.api = v["api_addr"].as_str().unwrap_or_default().to_string();
                return Ok(());
            }
            if !self.running() {
                let status = self.child.take().and_then(|mut c| c.reap());
                return Err(format!("{} exited with {status:?} before listening", self.name));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!("{} did not become ready in {timeout:?}", self.name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no chance to clean up) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Whether the process is running.
    pub fn running(&mut self) -> bool {
        self.child.as_ref().is_some_and(Spawned::running)
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Spawned::id)
    }

    /// Everything it logged, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
