//! The notification sinks the emergency and race tests deliver to.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{Server, Spawned, workspace};

/// The webhook receiver and SMTP sink of tests/py/sinks.py, stopped on drop.
pub struct Sinks {
    _process: Spawned,
    log: PathBuf,
    http_port: String,
    smtp_port: String,
}

impl Sinks {
    /// Starts the sinks; webhook signatures are checked with `secret`.
    pub fn start(s: &Server, secret: &str) -> Self {
        Self::start_logging_to(s.scratch("sinks.jsonl"), secret)
    }

    /// Starts the sinks, recording to `log` (for the in-process tests,
    /// which have no [`Server`]).
    pub fn start_logging_to(log: PathBuf, secret: &str) -> Self {
        let mut child = Spawned::start(
            Command::new("python3")
                .arg(workspace().join("tests/py/sinks.py"))
                .arg(&log)
                .arg(secret)
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .expect("python3 runs");
        let mut line = String::new();
        let stdout = child.child().stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("ready");
        let ports: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        assert_eq!(ports.first().map(String::as_str), Some("ready"), "sinks.py: {line}");
        Self { _process: child, log, http_port: ports[1].clone(), smtp_port: ports[2].clone() }
    }

    /// Points the server's `[notifications]` at the sinks (config.toml is read at each start).
    pub fn configure(&self, s: &Server) {
        self.configure_at(s, "/hook");
    }

    /// [`Self::configure`] with the webhook at `path` (chat services put
    /// their bearer secret there).
    pub fn configure_at(&self, s: &Server, path: &str) {
        let config = std::fs::read_to_string(s.data("config.toml")).expect("config");
        let config = format!(
            "{config}\n[notifications]\nwebhook_url = \"http://127.0.0.1:{}{path}\"\nsmtp_url = \"smtp://127.0.0.1:{}\"\n\
             mail_from = \"connect-pki@city.example\"\non_call = [\"it-oncall@city.example\"]\nconsole_url = \"https://pki.city.example:8443\"\n",
            self.http_port, self.smtp_port
        );
        std::fs::write(s.data("config.toml"), config).expect("config");
    }

    /// The webhook receiver at `path`, as `[notifications] webhook_url` names it.
    pub fn webhook_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// The SMTP sink as `[notifications] smtp_url` names it.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp_port)
    }

    /// Everything received so far, one JSON object per call or e-mail.
    pub fn entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
