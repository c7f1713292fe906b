//! Scenario 3: three instances, random traffic, SIGKILLs; the test, and the
//! model of what the clients know that steers its random choices.

use super::*;

mod agreement;
mod chaos;
mod crl_series;
mod notifications;
mod traffic;

use agreement::{compare_handshakes, compare_with_database};
use chaos::chaos_op;
use traffic::{Aftermath, Traffic};

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

/// What the database says of each certificate (status, reason), by normalised serial.
type Truth = HashMap<String, (String, Option<String>)>;

const CHAOS: Duration = Duration::from_secs(20);
const STAFF: usize = 10;

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
    let started = Instant::now();
    let seed = seed();
    eprintln!("three instances: seed {seed} (RACES_SEED={seed} replays the choices)");
    let env = [("CONNECT_PKI_WEBHOOK_SECRET", HOOK_SECRET)];
    let mut s = Server::start_with(Backend::Postgres, &env).await;
    let admin = s.admin_pem();
    let t = Tools::of(&s);
    let sinks = Sinks::start(&s, HOOK_SECRET);
    let (model, manager) = staff_with_devices(&s, &t, &admin);
    sinks.configure(&s);
    s.stop();
    let instances = start_instances(&s, &env);
    let who = Actors { admin: admin.clone(), manager };
    let setup = started.elapsed();

    let crl_dir = s.scratch("crls");
    std::fs::create_dir_all(&crl_dir).expect("crl dir");
    let traffic = Traffic::new(&t, &who, &crl_dir, seed, instances, model);
    let chaos_started = Instant::now();
    traffic.run(CHAOS);
    let chaos_took = chaos_started.elapsed();
    let traffic_over = Instant::now();
    let mut after = traffic.finish();
    let mut problems: Vec<String> = after.restart_problems.iter().map(|p| format!("[restarts] {p}")).collect();

    let eps = restart_the_dead(&mut after.instances, &mut problems);
    let api = &eps[0].api;
    let (mut truth, certs) = database_truth(&t, api, &admin, &after.model, &mut problems);
    let (caught_up, pass) = catch_up(&t, &eps, &admin, &certs, &mut truth, &crl_dir, &mut problems);
    check_promises(&t, api, &admin, &after.promises, &mut truth, &mut problems);
    let series = crl_series::check(&t, &crl_dir, &mut problems);
    let seen = notifications::check(&t, api, &admin, &sinks, &after, traffic_over, &mut problems);
    check_logs(&after.instances, &mut problems);

    let timings = Timings { started, setup, chaos_took, caught_up, pass };
    report(&timings, &after, &certs, &truth, &series, &seen);
    drop(after);
    fail_grouped("three instances with SIGKILLs", &problems);
}

/// A facility, its manager and STAFF staff members with a device each.
fn staff_with_devices(s: &Server, t: &Tools, admin: &Path) -> (Model, PathBuf) {
    let (facility, manager) =
        facility_with_manager(s, admin, "chaos.mgr", "多重化テスト施設", "manager@facility.example");
    let mut model = Model::default();
    for i in 0..STAFF {
        let login = format!("chaos{i:02}");
        let id = staff(s, &manager, facility, &login);
        let c = enroll(s, t, &manager, id, &login, Some(PASSWORD));
        model.users.push(StaffUser { id, login, retired: false });
        model.add_cert(i, c);
    }
    (model, manager)
}

fn start_instances(s: &Server, env: &[(&str, &str)]) -> Vec<Instance> {
    let mut instances: Vec<Instance> = ["a", "b", "c"].iter().map(|n| s.instance(n, env)).collect();
    for i in &mut instances {
        i.start(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}:\n{}", i.log()));
    }
    instances
}

/// Every instance up again (one whose restart failed gets another try).
fn restart_the_dead(instances: &mut [Instance], problems: &mut Vec<String>) -> Vec<Endpoint> {
    for i in instances.iter_mut() {
        if !i.running()
            && let Err(e) = i.start(Duration::from_secs(60))
        {
            problems.push(format!("[restarts] {e}"));
        }
    }
    instances.iter().map(Endpoint::of).collect()
}

/// What the database holds, through the admin API, and the certificates it
/// knows of.
fn database_truth(t: &Tools, api: &str, admin: &Path, model: &Model, problems: &mut Vec<String>) -> (Truth, Vec<Cert>) {
    let mut truth: Truth = HashMap::new();
    for c in &model.certs {
        match db_state(t, api, admin, &c.serial) {
            Ok(state) => {
                truth.insert(norm_serial(&c.serial), state);
            }
            Err(e) => problems.push(format!(
                "[instances vs database] certificate {} was handed out but the admin API says {e}",
                c.serial
            )),
        }
    }
    let certs = model.certs.iter().filter(|c| truth.contains_key(&norm_serial(&c.serial))).cloned().collect();
    (truth, certs)
}

/// Lets the instances catch up (bounded), then holds them to the database;
/// returns how long that took and in how many passes.
fn catch_up(
    t: &Tools,
    eps: &[Endpoint],
    admin: &Path,
    certs: &[Cert],
    truth: &mut Truth,
    crl_dir: &Path,
    problems: &mut Vec<String>,
) -> (Duration, usize) {
    let catch_up = Instant::now();
    let mut pass = 0;
    let disagreements = loop {
        let mut found = compare_with_database(t, eps, admin, certs, truth, crl_dir, pass);
        pass += 1;
        let last = catch_up.elapsed() > Duration::from_secs(20);
        // Handshakes (the slow part) once OCSP and the CRLs agree, or at the end.
        if found.is_empty() || last {
            found.extend(compare_handshakes(t, eps, certs, truth));
        }
        if found.is_empty() || last {
            break found;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    problems.extend(disagreements.into_iter().map(|p| format!("[instances vs database] {p}")));
    (catch_up.elapsed(), pass)
}

/// What the answers promised: a certificate answered as revoked (or
/// superseded by a renewal) is so in the database at the end.
fn check_promises(
    t: &Tools,
    api: &str,
    admin: &Path,
    promises: &[Promise],
    truth: &mut Truth,
    problems: &mut Vec<String>,
) {
    for p in promises {
        let key = norm_serial(&p.serial);
        if !truth.contains_key(&key) {
            match db_state(t, api, admin, &p.serial) {
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
}

/// No deadlocks in any log.
fn check_logs(instances: &[Instance], problems: &mut Vec<String>) {
    for i in instances {
        for line in i.log().lines().filter(|l| l.to_lowercase().contains("deadlock")) {
            problems.push(format!("[instance logs] {} logged: {line}", i.name));
        }
    }
}

/// How long each phase took, for the report.
struct Timings {
    started: Instant,
    setup: Duration,
    chaos_took: Duration,
    caught_up: Duration,
    pass: usize,
}

fn report(
    timings: &Timings,
    after: &Aftermath,
    certs: &[Cert],
    truth: &Truth,
    series: &[crl_series::Crl],
    seen: &notifications::Seen,
) {
    let mut states = BTreeMap::new();
    for (status, reason) in truth.values() {
        count(&mut states, format!("{status}{}", reason.as_ref().map_or(String::new(), |r| format!(" {r}"))));
    }
    eprintln!(
        "three instances: {:.1} s in all (setup {:.1} s, traffic {:.1} s, catch-up {:.1} s over {} pass(es))\n\
         SIGKILLs: {:?} (starts per instance: {:?})\noperations (curl N: no HTTP answer — 35, 55, 56: handshake refused; \
         7, 52: instance down or killed):\n{}\ncertificates by final state ({} known, {} on no client's list):\n{}\n\
         answers that promised a final state: {}\nCRLs fetched: {} (numbers {}–{})\nnotifications ({} escalations; delivery logs read {:.1} s after the traffic) by delivery log, and how often each arrived:\n{}",
        timings.started.elapsed().as_secs_f64(),
        timings.setup.as_secs_f64(),
        timings.chaos_took.as_secs_f64(),
        timings.caught_up.as_secs_f64(),
        timings.pass,
        after.kills,
        after.instances.iter().map(|i| (i.name.clone(), i.starts)).collect::<Vec<_>>(),
        table(&after.outcomes),
        certs.len(),
        truth.len() - certs.len(),
        table(&states),
        after.promises.len(),
        series.len(),
        series.first().map_or(0, |c| c.0),
        series.last().map_or(0, |c| c.0),
        seen.escalations,
        seen.settled.as_secs_f64(),
        table(&seen.notes),
    );
}
