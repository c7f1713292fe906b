//! The clocks of the outside programs a test starts. A server put at another
//! time runs under libfaketime, and every client that talks to it (openssl,
//! curl, Python, Chromium) runs on the same clock: otherwise one of them judges
//! the other's certificates or answers "not yet valid" or "expired".
//!
//! Times are always given as offsets from the real clock (`FAKETIME=+N`),
//! never as a date: an offset means the same instant to every process that
//! carries it, whenever it starts, and it composes with the offset of the
//! test process itself when `tests/at-every-hour` runs the suite under
//! libfaketime.

use std::path::PathBuf;
use std::process::Command;

use time::{Duration, OffsetDateTime};

/// libfaketime from Debian's `faketime` package (installed by tests/run).
pub fn faketime_library() -> PathBuf {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libfaketime is needed for this test (apt-get install faketime; the README's test command does)")
}

/// A wall clock some seconds off the real one, optionally running faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeTime {
    /// Seconds ahead of the real clock (negative: behind).
    offset: i64,
    /// How many times as fast the server's clock runs from its start.
    speed: Option<u32>,
}

impl FakeTime {
    /// A clock that reads `at` now, as this test process tells the time.
    pub fn at(at: OffsetDateTime) -> Self {
        Self::ahead(at - OffsetDateTime::now_utc())
    }

    /// A clock `by` ahead of this test process's.
    pub fn ahead(by: Duration) -> Self {
        Self { offset: own_offset() + by.whole_seconds(), speed: None }
    }

    /// The same clock, running `speed` times as fast from each process's
    /// start. Only the server runs fast: its clients stay at the plain offset,
    /// which the fast clock only ever moves away from forwards.
    pub fn fast(self, speed: u32) -> Self {
        Self { speed: Some(speed), ..self }
    }

    /// The FAKETIME value.
    pub fn spec(&self) -> String {
        match self.speed {
            Some(x) => format!("{:+} x{x}", self.offset),
            None => format!("{:+}", self.offset),
        }
    }

    /// The environment of a server on this clock: only the wall clock moves,
    /// its timers keep real time (a fast clock must not make them fire early).
    pub fn server_vars(&self) -> [(&'static str, String); 4] {
        vars(self.spec(), true)
    }

    /// Puts `cmd` on this clock as a server ([`Self::server_vars`]).
    pub fn server(&self, cmd: &mut Command) {
        cmd.envs(self.server_vars());
    }

    /// Puts `cmd` on this clock as a client of the server. Monotonic time is
    /// offset as well: libfaketime 0.9.10 fails absolute sleeps on the real
    /// monotonic clock (Python's `time.sleep` gets EINVAL).
    pub fn client(&self, cmd: &mut Command) {
        cmd.envs(vars(format!("{:+}", self.offset), false));
    }
}

fn vars(spec: String, real_monotonic: bool) -> [(&'static str, String); 4] {
    [
        ("LD_PRELOAD", faketime_library().display().to_string()),
        ("FAKETIME", spec),
        ("FAKETIME_DONT_FAKE_MONOTONIC", if real_monotonic { "1" } else { "0" }.to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
    ]
}

/// How far this test process's own clock is off the real one: 0, unless the
/// suite runs under libfaketime (`tests/at-every-hour`), which sets a
/// relative FAKETIME so that its children can add theirs to it.
fn own_offset() -> i64 {
    let preloaded = std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("faketime"));
    match std::env::var("FAKETIME") {
        Ok(spec) if preloaded => parse_offset(&spec).unwrap_or_else(|| {
            panic!("the tests run under FAKETIME={spec:?}; only an offset (+N or -N seconds) can be passed on to the programs they start")
        }),
        _ => 0,
    }
}

/// `+N`, `-N` (seconds) or with a unit: `+3m`, `+2h`, `+7d`.
fn parse_offset(spec: &str) -> Option<i64> {
    let spec = spec.trim();
    let (sign, rest) = match spec.as_bytes().first()? {
        b'+' => (1, &spec[1..]),
        b'-' => (-1, &spec[1..]),
        _ => return None,
    };
    let (digits, unit) = rest.split_at(rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len()));
    let n: i64 = digits.parse().ok()?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(sign * n * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_with_and_without_units() {
        assert_eq!(parse_offset("+90"), Some(90));
        assert_eq!(parse_offset("-3600"), Some(-3600));
        assert_eq!(parse_offset("+2h"), Some(7200));
        assert_eq!(parse_offset("+400d"), Some(400 * 86_400));
        assert_eq!(parse_offset("@2026-12-01 01:00:00"), None);
        assert_eq!(parse_offset("+1d x60"), None, "a speed is the server's alone");
    }

    #[test]
    fn a_fast_clock_keeps_its_offset_for_clients() {
        let t = FakeTime { offset: 120, speed: None }.fast(60);
        assert_eq!(t.spec(), "+120 x60");
        let mut cmd = Command::new("true");
        t.client(&mut cmd);
        let faketime = cmd.get_envs().find(|(k, _)| *k == "FAKETIME").and_then(|(_, v)| v);
        assert_eq!(faketime.and_then(|v| v.to_str()), Some("+120"));
    }
}
