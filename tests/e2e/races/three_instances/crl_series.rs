//! CRLs over time: a higher number never leaves out a permanent entry
//! (anything but certificateHold) that a lower number listed, nor changes
//! its reason. (Certificates here live a year: none expires.)

use super::*;

/// One fetched CRL: its number, file name and revoked serials with reasons.
pub(super) type Crl = (i64, String, BTreeMap<String, String>);

/// Every CRL kept in `crl_dir`, ordered by number, checked; problems go to
/// `problems`.
pub(super) fn check(t: &Tools, crl_dir: &Path, problems: &mut Vec<String>) -> Vec<Crl> {
    let series = read(t, crl_dir, problems);
    let mut history = History::default();
    let mut i = 0;
    while i < series.len() {
        let number = series[i].0;
        let group: Vec<&Crl> = series[i..].iter().take_while(|c| c.0 == number).collect();
        for (_, file, revoked) in &group {
            history.compare(number, file, revoked, problems);
        }
        for (_, file, revoked) in &group {
            history.remember(number, file, revoked);
        }
        i += group.len();
    }
    history.report(problems);
    series
}

/// The CRLs read by Python cryptography, sorted by number.
fn read(t: &Tools, crl_dir: &Path, problems: &mut Vec<String>) -> Vec<Crl> {
    let facts = python_json("crl_series.py", &[&path(crl_dir), &t.issuing], &t.dir);
    let mut series: Vec<Crl> = Vec::new();
    for (file, f) in facts.as_object().expect("crl_series.py prints an object") {
        if let Some(e) = f.get("error") {
            problems.push(format!("[CRLs over time] CRL {file} is unreadable: {e}"));
            continue;
        }
        if f["signature_valid"] != true {
            problems.push(format!("[CRLs over time] CRL {file} does not verify"));
        }
        let revoked = f["revoked"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (norm_serial(k), v.as_str().unwrap_or("unspecified").to_string())).collect())
            .unwrap_or_default();
        series.push((f["crl_number"].as_i64().unwrap_or(-1), file.clone(), revoked));
    }
    series.sort();
    series
}

/// What the CRLs of lower numbers established.
#[derive(Default)]
struct History<'a> {
    /// serial → (reason, the number and file that first listed it for good).
    permanent: BTreeMap<String, (String, i64, String)>,
    by_number: BTreeMap<i64, (String, &'a BTreeMap<String, String>)>,
    /// serial → (CRLs that went backwards on it, the first of them, numbers seen).
    backwards: BTreeMap<String, (usize, String, BTreeSet<i64>)>,
}

impl<'a> History<'a> {
    fn compare(&mut self, number: i64, file: &str, revoked: &'a BTreeMap<String, String>, problems: &mut Vec<String>) {
        if let Some((first, entries)) = self.by_number.get(&number) {
            if *entries != revoked {
                problems.push(format!(
                    "[CRLs over time] CRL number {number} was served with two contents ({first} and {file})"
                ));
            }
        } else {
            self.by_number.insert(number, (file.to_string(), revoked));
        }
        for (serial, (reason, seen_in, seen_file)) in &self.permanent {
            match revoked.get(serial) {
                Some(r) if r == reason => {}
                other => {
                    let first = || {
                        format!(
                            "CRL number {number} ({file}) {} {serial}, which CRL number {seen_in} ({seen_file}) listed as {reason}",
                            other.map_or("leaves out".to_string(), |r| format!("lists as {r}"))
                        )
                    };
                    let e = self.backwards.entry(serial.clone()).or_insert_with(|| (0, first(), BTreeSet::new()));
                    e.0 += 1;
                    e.2.insert(number);
                }
            }
        }
    }

    fn remember(&mut self, number: i64, file: &str, revoked: &BTreeMap<String, String>) {
        for (serial, reason) in revoked.iter() {
            if reason != "certificate_hold" {
                self.permanent.entry(serial.clone()).or_insert((reason.clone(), number, file.to_string()));
            }
        }
    }

    fn report(&self, problems: &mut Vec<String>) {
        for (count, first, numbers) in self.backwards.values() {
            problems.push(format!(
                "[CRLs over time] {first}; {count} fetched CRL(s) went backwards on it (numbers {}–{})",
                numbers.first().unwrap_or(&0),
                numbers.last().unwrap_or(&0)
            ));
        }
    }
}
