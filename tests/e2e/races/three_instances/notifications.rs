//! Notifications: wait (bounded) until none is pending, then each one
//! delivered must have arrived exactly once.

use super::*;

/// (escalation, event, `webhook` or the mail recipient).
type Key = (i64, String, String);

/// What the report shows of the notifications.
pub(super) struct Seen {
    pub(super) escalations: usize,
    /// When the delivery logs were read, counted from the end of the traffic.
    pub(super) settled: Duration,
    /// Notifications by delivery log state and how often each arrived.
    pub(super) notes: BTreeMap<String, usize>,
}

/// The delivery logs (through the admin API at `api`) against what the
/// sinks received; problems go to `problems`.
pub(super) fn check(
    t: &Tools,
    api: &str,
    admin: &Path,
    sinks: &Sinks,
    after: &Aftermath,
    traffic_over: Instant,
    problems: &mut Vec<String>,
) -> Seen {
    let r = t.api(api, "GET", "/api/v1/escalations?status=all", admin, None);
    let escalations: Vec<i64> =
        r.body.as_array().map(|a| a.iter().filter_map(|e| e["id"].as_i64()).collect()).unwrap_or_default();
    if r.status != 200 {
        problems.push(format!("[notifications] listing escalations: {}", r.describe()));
    }
    let deliveries = settled_deliveries(t, api, admin, &escalations, after.last_kill);
    let settled = traffic_over.elapsed();
    let expected = expected(&deliveries);
    let received = received(sinks, problems);
    let notes = compare(&expected, &received, after.kills.len(), traffic_over, problems);
    Seen { escalations: escalations.len(), settled, notes }
}

/// Every escalation's delivery log, once none is pending or the wait is over.
fn settled_deliveries(
    t: &Tools,
    api: &str,
    admin: &Path,
    escalations: &[i64],
    last_kill: Option<Instant>,
) -> Vec<(i64, Value)> {
    // A notification that a killed instance had taken for delivery is taken
    // over by another only when the dead one's claim on it runs out (a 30 s
    // lease in the server today): wait up to 45 s after the last SIGKILL,
    // and at least 30 s after the traffic.
    let wait_until = [last_kill.map(|k| k + Duration::from_secs(45)), Some(Instant::now() + Duration::from_secs(30))]
        .into_iter()
        .flatten()
        .max()
        .expect("a deadline");
    loop {
        let mut all = Vec::new();
        for id in escalations {
            let r = t.api(api, "GET", &format!("/api/v1/escalations/{id}/notifications"), admin, None);
            for n in r.body.as_array().cloned().unwrap_or_default() {
                all.push((*id, n));
            }
        }
        let pending = all.iter().filter(|(_, n)| n["status"] == "pending").count();
        if pending == 0 || Instant::now() > wait_until {
            return all;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Each logged notification and its delivery state.
fn expected(deliveries: &[(i64, Value)]) -> BTreeMap<Key, String> {
    let mut expected = BTreeMap::new();
    for (id, n) in deliveries {
        let target = if n["channel"] == "webhook" {
            "webhook".to_string()
        } else {
            n["target"].as_str().unwrap_or("").to_string()
        };
        expected.insert(
            (*id, n["event"].as_str().unwrap_or("").to_string(), target),
            n["status"].as_str().unwrap_or("").to_string(),
        );
    }
    expected
}

/// How often each notification reached the webhook or a mailbox.
fn received(sinks: &Sinks, problems: &mut Vec<String>) -> BTreeMap<Key, usize> {
    let mut received: BTreeMap<Key, usize> = BTreeMap::new();
    for e in sinks.entries() {
        if e["kind"] == "webhook" {
            if e["signature_valid"] != true {
                problems.push(format!("[notifications] webhook call with a bad signature: {e}"));
            }
            if e["answered"] != 200 {
                continue; // the sink's deliberate first 500
            }
            let key = (
                e["body"]["escalation_id"].as_i64().unwrap_or(-1),
                e["event"].as_str().unwrap_or("").to_string(),
                "webhook".to_string(),
            );
            *received.entry(key).or_default() += 1;
        } else {
            let subject = e["subject"].as_str().unwrap_or("");
            let id = subject
                .split("受付 ")
                .nth(1)
                .and_then(|r| r.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok())
                .unwrap_or(-1);
            let event = if subject.contains("行政管理課に回されました") { "escalated" } else { "opened" };
            for to in e["to"].as_array().cloned().unwrap_or_default() {
                let key = (id, event.to_string(), to.as_str().unwrap_or("").to_string());
                *received.entry(key).or_default() += 1;
            }
        }
    }
    received
}

/// Exactly once, except where a SIGKILL fell between a send and its
/// record: each instance sends one notification at a time, so each kill
/// can repeat at most one (delivery is at least once across a crash).
fn compare(
    expected: &BTreeMap<Key, String>,
    received: &BTreeMap<Key, usize>,
    kill_count: usize,
    traffic_over: Instant,
    problems: &mut Vec<String>,
) -> BTreeMap<String, usize> {
    let mut notes = BTreeMap::new();
    let mut repeated = Vec::new();
    for (key, status) in expected {
        let got = received.get(key).copied().unwrap_or(0);
        count(&mut notes, format!("{status}, received {got}×"));
        if status == "delivered" && got == 2 {
            repeated.push(key.clone());
        } else if status == "delivered" && got != 1 {
            problems
                .push(format!("[notifications] notification {key:?} is delivered in the log and arrived {got} times"));
        } else if status != "delivered" && got > 0 {
            problems
                .push(format!("[notifications] notification {key:?} is {status} in the log and arrived {got} times"));
        } else if status == "pending" {
            problems.push(format!(
                "[notifications] notification {key:?} still pending {:.0} s after the traffic",
                traffic_over.elapsed().as_secs_f64()
            ));
        }
    }
    if repeated.len() > kill_count {
        problems.push(format!(
            "[notifications] {} notifications arrived twice, more than the {kill_count} SIGKILLs can explain: {repeated:?}",
            repeated.len()
        ));
    }
    for (key, got) in received {
        if !expected.contains_key(key) {
            problems
                .push(format!("[notifications] notification {key:?} arrived {got} times but is in no delivery log"));
        }
    }
    notes
}
