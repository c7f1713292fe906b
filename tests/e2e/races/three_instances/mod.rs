//! Scenario 3: three instances, random traffic, SIGKILLs; the test, and the
//! model of what the clients know that steers its random choices.

use super::*;

mod agreement;
mod chaos;

use agreement::{compare_handshakes, compare_with_database};
use chaos::chaos_op;

/// xorshift64*: enough randomness for choosing operations, and a seed that
/// can be given back (`RACES_SEED`) to replay the same choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

fn seed() -> u64 {
    std::env::var("RACES_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    })
}

#[derive(Debug, Clone)]
struct Endpoint {
    name: String,
    public: String,
    api: String,
}

impl Endpoint {
    fn of(i: &Instance) -> Self {
        Self { name: i.name.clone(), public: i.public.clone(), api: i.api.clone() }
    }
}

/// The instances' current addresses; `None` while one is down.
struct Endpoints(Mutex<Vec<Option<Endpoint>>>);

impl Endpoints {
    fn pick(&self, rng: &mut Rng) -> Option<Endpoint> {
        let up: Vec<Endpoint> = self.0.lock().expect("endpoints").iter().flatten().cloned().collect();
        (!up.is_empty()).then(|| up[rng.below(up.len())].clone())
    }
}

#[derive(Debug)]
struct StaffUser {
    id: i64,
    login: String,
    retired: bool,
}

#[derive(Debug)]
struct DeviceM {
    id: i64,
    user: usize,
    /// Index in `certs` of its newest certificate.
    current: usize,
}

/// What the clients know: people, devices, every certificate ever handed
/// out to them, and escalations by state. The service decides; this only
/// steers the random choices.
#[derive(Debug, Default)]
struct Model {
    users: Vec<StaffUser>,
    devices: Vec<DeviceM>,
    certs: Vec<Cert>,
    open: Vec<Escalation>,
    claimed: Vec<Escalation>,
}

/// An emergency report the clients know of, and the serials it put on hold.
#[derive(Debug, Clone)]
struct Escalation {
    id: i64,
    held: Vec<String>,
}

/// What a 2xx answer promised about a certificate for good: `revoked` (a
/// revocation is never undone) or `superseded` (by a renewal).
#[derive(Debug, Clone)]
struct Promise {
    serial: String,
    status: &'static str,
    by: String,
}

impl Model {
    fn add_cert(&mut self, user: usize, c: Cert) {
        let idx = self.certs.len();
        match self.devices.iter_mut().find(|d| d.id == c.device) {
            Some(d) => d.current = idx,
            None => self.devices.push(DeviceM { id: c.device, user, current: idx }),
        }
        self.certs.push(c);
    }

    /// A device, mostly of someone not retired.
    fn device(&self, rng: &mut Rng) -> Option<&DeviceM> {
        let live: Vec<&DeviceM> = self.devices.iter().filter(|d| !self.users[d.user].retired).collect();
        if !live.is_empty() && rng.below(5) != 0 {
            return Some(live[rng.below(live.len())]);
        }
        self.devices.get(rng.below(self.devices.len()))
    }
}

/// What a revoke answered 200 promises: revoked for good — or superseded,
/// when the certificate had been renewed before (revoking it changes nothing).
fn final_state(revoke: &Reply) -> &'static str {
    if revoke.body["status"] == "superseded" { "superseded" } else { "revoked" }
}

struct Actors {
    admin: PathBuf,
    manager: PathBuf,
}

/// Three instances on one PostgreSQL database; client threads send random
/// revocations, holds, releases, lost devices, retirements, renewals,
/// enrollments and emergency reports (claimed and resolved) to random
/// instances, while one instance at a time is SIGKILLed and restarted. When
/// it is over, every instance must agree with the database for every
/// certificate (handshake, OCSP, CRL); no CRL may drop a permanent entry a
/// lower-numbered one listed; every notification reached the webhook and
/// the mailboxes exactly once; no instance logged a deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_with_sigkills_agree_with_the_database() {
    const CHAOS: Duration = Duration::from_secs(20);
    const CLIENTS: usize = 4;
    const MAX_KILLS: usize = 4;
    const STAFF: usize = 10;
    let started = Instant::now();
    let seed = seed();
    eprintln!("three instances: seed {seed} (RACES_SEED={seed} replays the choices)");
    let env = [("CONNECT_PKI_WEBHOOK_SECRET", HOOK_SECRET)];
    let mut s = Server::start_with(Backend::Postgres, &env).await;
    let admin = s.admin_pem();
    let t = Tools::of(&s);
    let sinks = Sinks::start(&s, HOOK_SECRET);
    let (facility, manager) =
        facility_with_manager(&s, &admin, "chaos.mgr", "多重化テスト施設", "manager@facility.example");
    let mut model = Model::default();
    for i in 0..STAFF {
        let login = format!("chaos{i:02}");
        let id = staff(&s, &manager, facility, &login);
        let c = enroll(&s, &t, &manager, id, &login, Some(PASSWORD));
        model.users.push(StaffUser { id, login, retired: false });
        model.add_cert(i, c);
    }
    sinks.configure(&s);
    s.stop();

    let mut instances: Vec<Instance> = ["a", "b", "c"].iter().map(|n| s.instance(n, &env)).collect();
    for i in &mut instances {
        i.start(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}:\n{}", i.log()));
    }
    let eps = Endpoints(Mutex::new(instances.iter().map(|i| Some(Endpoint::of(i))).collect()));
    let instances = Mutex::new(instances);
    let model = Mutex::new(model);
    let who = Actors { admin: admin.clone(), manager: manager.clone() };
    let setup = started.elapsed();

    let crl_dir = s.scratch("crls");
    std::fs::create_dir_all(&crl_dir).expect("crl dir");
    let outcomes = Mutex::new(BTreeMap::<String, usize>::new());
    let promises = Mutex::new(Vec::<Promise>::new());
    let mut problems: Vec<String> = Vec::new();
    let kills = Mutex::new(Vec::<String>::new());
    let last_kill = Mutex::new(None::<Instant>);
    let restart_problems = Mutex::new(Vec::<String>::new());
    let polled = AtomicU64::new(0);
    let chaos_started = Instant::now();
    let deadline = chaos_started + CHAOS;
    std::thread::scope(|scope| {
        for n in 0..CLIENTS {
            let (t, eps, model, who, outcomes, promises) = (&t, &eps, &model, &who, &outcomes, &promises);
            scope.spawn(move || {
                let mut rng = Rng(seed.wrapping_add((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
                while Instant::now() < deadline {
                    let key = chaos_op(t, eps, model, who, promises, &mut rng);
                    count(&mut outcomes.lock().expect("outcomes"), key);
                }
            });
        }
        // The killer: one instance at a time, at random moments.
        {
            let (eps, instances, kills, restart_problems, last_kill) =
                (&eps, &instances, &kills, &restart_problems, &last_kill);
            scope.spawn(move || {
                let mut rng = Rng(seed ^ 0xDEAD_BEEF);
                for _ in 0..MAX_KILLS {
                    std::thread::sleep(rng.millis(1500, 3000));
                    // Kills only in the first 60 % of the traffic, so that
                    // what they interrupted can settle before the end.
                    if chaos_started.elapsed() > CHAOS * 6 / 10 {
                        break;
                    }
                    let victim = rng.below(3);
                    eps.0.lock().expect("endpoints")[victim] = None;
                    let mut all = instances.lock().expect("instances");
                    let i = &mut all[victim];
                    let at = chaos_started.elapsed().as_secs_f64();
                    i.kill();
                    *last_kill.lock().expect("last kill") = Some(Instant::now());
                    std::thread::sleep(rng.millis(200, 800));
                    match i.start(Duration::from_secs(60)) {
                        Ok(()) => {
                            kills.lock().expect("kills").push(format!("{} at {at:.1} s", i.name));
                            eps.0.lock().expect("endpoints")[victim] = Some(Endpoint::of(i));
                        }
                        Err(e) => {
                            restart_problems.lock().expect("problems").push(format!("restart after SIGKILL: {e}"))
                        }
                    }
                }
            });
        }
        // The CRL poller: every instance's CRL, over and over, kept for later.
        {
            let (t, eps, crl_dir, polled) = (&t, &eps, &crl_dir, &polled);
            scope.spawn(move || {
                while Instant::now() < deadline {
                    let current: Vec<Option<Endpoint>> = eps.0.lock().expect("endpoints").clone();
                    for ep in current.iter().flatten() {
                        let name = &ep.name;
                        let n = polled.fetch_add(1, Ordering::Relaxed);
                        let _ = t.fetch_crl(&ep.public, &crl_dir.join(format!("run-{n:05}-{name}.der")));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        }
    });
    let chaos_took = chaos_started.elapsed();
    let traffic_over = Instant::now();
    problems.extend(restart_problems.into_inner().expect("problems").into_iter().map(|p| format!("[restarts] {p}")));

    // Every instance up again (one whose restart failed gets another try).
    let mut instances = instances.into_inner().expect("instances");
    for i in &mut instances {
        if !i.running()
            && let Err(e) = i.start(Duration::from_secs(60))
        {
            problems.push(format!("[restarts] {e}"));
        }
    }
    let eps: Vec<Endpoint> = instances.iter().map(Endpoint::of).collect();
    let model = model.into_inner().expect("model");

    // What the database holds, through the admin API.
    let mut truth: HashMap<String, (String, Option<String>)> = HashMap::new();
    for c in &model.certs {
        match db_state(&t, &eps[0].api, &admin, &c.serial) {
            Ok(state) => {
                truth.insert(norm_serial(&c.serial), state);
            }
            Err(e) => problems.push(format!(
                "[instances vs database] certificate {} was handed out but the admin API says {e}",
                c.serial
            )),
        }
    }
    let certs: Vec<Cert> =
        model.certs.iter().filter(|c| truth.contains_key(&norm_serial(&c.serial))).cloned().collect();

    // Let the instances catch up (bounded), then hold them to the database.
    let catch_up = Instant::now();
    let mut pass = 0;
    let disagreements = loop {
        let mut found = compare_with_database(&t, &eps, &admin, &certs, &mut truth, &crl_dir, pass);
        pass += 1;
        let last = catch_up.elapsed() > Duration::from_secs(20);
        // Handshakes (the slow part) once OCSP and the CRLs agree, or at the end.
        if found.is_empty() || last {
            found.extend(compare_handshakes(&t, &eps, &certs, &truth));
        }
        if found.is_empty() || last {
            break found;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let caught_up = catch_up.elapsed();
    problems.extend(disagreements.into_iter().map(|p| format!("[instances vs database] {p}")));

    // What the answers promised: a certificate answered as revoked (or
    // superseded by a renewal) is so in the database at the end.
    let promises = promises.into_inner().expect("promises");
    for p in &promises {
        let key = norm_serial(&p.serial);
        if !truth.contains_key(&key) {
            match db_state(&t, &eps[0].api, &admin, &p.serial) {
                Ok(state) => {
                    truth.insert(key.clone(), state);
                }
                Err(e) => {
                    problems.push(format!("[answers vs database] {} ({}): the admin API says {e}", p.serial, p.by));
                    continue;
                }
            }
        }
        let (status, reason) = &truth[&key];
        if status != p.status {
            problems.push(format!(
                "[answers vs database] {} ended {status}{} although {}",
                p.serial,
                reason.as_ref().map_or(String::new(), |r| format!(" {r}")),
                p.by
            ));
        }
    }

    // CRLs over time: a higher number never leaves out a permanent entry
    // (anything but certificateHold) that a lower number listed, nor changes
    // its reason. (Certificates here live a year: none expires.)
    let facts = python_json("crl_series.py", &[&path(&crl_dir), &t.issuing], &t.dir);
    let mut series: Vec<(i64, String, BTreeMap<String, String>)> = Vec::new();
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
    let mut permanent: BTreeMap<String, (String, i64, String)> = BTreeMap::new();
    let mut by_number: BTreeMap<i64, (String, &BTreeMap<String, String>)> = BTreeMap::new();
    // serial → (CRLs that went backwards on it, the first of them, numbers seen).
    let mut backwards: BTreeMap<String, (usize, String, BTreeSet<i64>)> = BTreeMap::new();
    let mut i = 0;
    while i < series.len() {
        let number = series[i].0;
        let group: Vec<&(i64, String, BTreeMap<String, String>)> =
            series[i..].iter().take_while(|c| c.0 == number).collect();
        for (_, file, revoked) in &group {
            if let Some((first, entries)) = by_number.get(&number) {
                if *entries != revoked {
                    problems.push(format!(
                        "[CRLs over time] CRL number {number} was served with two contents ({first} and {file})"
                    ));
                }
            } else {
                by_number.insert(number, (file.clone(), revoked));
            }
            for (serial, (reason, seen_in, seen_file)) in &permanent {
                match revoked.get(serial) {
                    Some(r) if r == reason => {}
                    other => {
                        let first = || {
                            format!(
                                "CRL number {number} ({file}) {} {serial}, which CRL number {seen_in} ({seen_file}) listed as {reason}",
                                other.map_or("leaves out".to_string(), |r| format!("lists as {r}"))
                            )
                        };
                        let e = backwards.entry(serial.clone()).or_insert_with(|| (0, first(), BTreeSet::new()));
                        e.0 += 1;
                        e.2.insert(number);
                    }
                }
            }
        }
        for (_, file, revoked) in &group {
            for (serial, reason) in revoked.iter() {
                if reason != "certificate_hold" {
                    permanent.entry(serial.clone()).or_insert((reason.clone(), number, file.clone()));
                }
            }
        }
        i += group.len();
    }
    for (count, first, numbers) in backwards.values() {
        problems.push(format!(
            "[CRLs over time] {first}; {count} fetched CRL(s) went backwards on it (numbers {}–{})",
            numbers.first().unwrap_or(&0),
            numbers.last().unwrap_or(&0)
        ));
    }

    // Notifications: wait (bounded) until none is pending, then each one
    // delivered must have arrived exactly once.
    let r = t.api(&eps[0].api, "GET", "/api/v1/escalations?status=all", &admin, None);
    let escalations: Vec<i64> =
        r.body.as_array().map(|a| a.iter().filter_map(|e| e["id"].as_i64()).collect()).unwrap_or_default();
    if r.status != 200 {
        problems.push(format!("[notifications] listing escalations: {}", r.describe()));
    }
    // A notification that a killed instance had taken for delivery is taken
    // over by another only when the dead one's claim on it runs out (a 30 s
    // lease in the server today): wait up to 45 s after the last SIGKILL,
    // and at least 30 s after the traffic.
    let wait_until = [
        last_kill.lock().expect("last kill").map(|k| k + Duration::from_secs(45)),
        Some(Instant::now() + Duration::from_secs(30)),
    ]
    .into_iter()
    .flatten()
    .max()
    .expect("a deadline");
    let deliveries: Vec<(i64, Value)> = loop {
        let mut all = Vec::new();
        for id in &escalations {
            let r = t.api(&eps[0].api, "GET", &format!("/api/v1/escalations/{id}/notifications"), &admin, None);
            for n in r.body.as_array().cloned().unwrap_or_default() {
                all.push((*id, n));
            }
        }
        let pending = all.iter().filter(|(_, n)| n["status"] == "pending").count();
        if pending == 0 || Instant::now() > wait_until {
            break all;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let notifications_settled = traffic_over.elapsed();
    let mut expected: BTreeMap<(i64, String, String), String> = BTreeMap::new();
    for (id, n) in &deliveries {
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
    let mut received: BTreeMap<(i64, String, String), usize> = BTreeMap::new();
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
    // Exactly once, except where a SIGKILL fell between a send and its
    // record: each instance sends one notification at a time, so each kill
    // can repeat at most one (delivery is at least once across a crash).
    let mut notes = BTreeMap::new();
    let mut repeated = Vec::new();
    for (key, status) in &expected {
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
    let kill_count = kills.lock().expect("kills").len();
    if repeated.len() > kill_count {
        problems.push(format!(
            "[notifications] {} notifications arrived twice, more than the {kill_count} SIGKILLs can explain: {repeated:?}",
            repeated.len()
        ));
    }
    for (key, got) in &received {
        if !expected.contains_key(key) {
            problems
                .push(format!("[notifications] notification {key:?} arrived {got} times but is in no delivery log"));
        }
    }

    // No deadlocks in any log.
    for i in &instances {
        for line in i.log().lines().filter(|l| l.to_lowercase().contains("deadlock")) {
            problems.push(format!("[instance logs] {} logged: {line}", i.name));
        }
    }

    let mut states = BTreeMap::new();
    for (status, reason) in truth.values() {
        count(&mut states, format!("{status}{}", reason.as_ref().map_or(String::new(), |r| format!(" {r}"))));
    }
    eprintln!(
        "three instances: {:.1} s in all (setup {:.1} s, traffic {:.1} s, catch-up {:.1} s over {pass} pass(es))\n\
         SIGKILLs: {:?} (starts per instance: {:?})\noperations (curl N: no HTTP answer — 35, 55, 56: handshake refused; \
         7, 52: instance down or killed):\n{}\ncertificates by final state ({} known, {} on no client's list):\n{}\n\
         answers that promised a final state: {}\nCRLs fetched: {} (numbers {}–{})\nnotifications ({} escalations; delivery logs read {:.1} s after the traffic) by delivery log, and how often each arrived:\n{}",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        chaos_took.as_secs_f64(),
        caught_up.as_secs_f64(),
        kills.lock().expect("kills"),
        instances.iter().map(|i| (i.name.clone(), i.starts)).collect::<Vec<_>>(),
        table(&outcomes.lock().expect("outcomes")),
        certs.len(),
        truth.len() - certs.len(),
        table(&states),
        promises.len(),
        series.len(),
        series.first().map_or(0, |c| c.0),
        series.last().map_or(0, |c| c.0),
        escalations.len(),
        notifications_settled.as_secs_f64(),
        table(&notes),
    );
    drop(instances);
    fail_grouped("three instances with SIGKILLs", &problems);
}
