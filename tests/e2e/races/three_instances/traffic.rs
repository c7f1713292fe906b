//! The chaos itself: client threads sending random operations, a killer
//! SIGKILLing and restarting one instance at a time, and a poller keeping
//! every CRL served meanwhile.

use super::*;

const CLIENTS: usize = 4;
const MAX_KILLS: usize = 4;

/// What the client threads, the killer and the CRL poller share while the
/// traffic runs.
pub(super) struct Traffic<'a> {
    t: &'a Tools,
    who: &'a Actors,
    crl_dir: &'a Path,
    seed: u64,
    eps: Endpoints,
    instances: Mutex<Vec<Instance>>,
    model: Mutex<Model>,
    outcomes: Mutex<BTreeMap<String, usize>>,
    promises: Mutex<Vec<Promise>>,
    kills: Mutex<Vec<String>>,
    last_kill: Mutex<Option<Instant>>,
    restart_problems: Mutex<Vec<String>>,
    polled: AtomicU64,
}

/// What the traffic left behind, for the checks and the report.
pub(super) struct Aftermath {
    pub(super) instances: Vec<Instance>,
    pub(super) model: Model,
    pub(super) outcomes: BTreeMap<String, usize>,
    pub(super) promises: Vec<Promise>,
    /// `a at 3.2 s` for each SIGKILL whose instance came back.
    pub(super) kills: Vec<String>,
    pub(super) last_kill: Option<Instant>,
    pub(super) restart_problems: Vec<String>,
}

impl<'a> Traffic<'a> {
    pub(super) fn new(
        t: &'a Tools,
        who: &'a Actors,
        crl_dir: &'a Path,
        seed: u64,
        instances: Vec<Instance>,
        model: Model,
    ) -> Self {
        Self {
            t,
            who,
            crl_dir,
            seed,
            eps: Endpoints(Mutex::new(instances.iter().map(|i| Some(Endpoint::of(i))).collect())),
            instances: Mutex::new(instances),
            model: Mutex::new(model),
            outcomes: Mutex::new(BTreeMap::new()),
            promises: Mutex::new(Vec::new()),
            kills: Mutex::new(Vec::new()),
            last_kill: Mutex::new(None),
            restart_problems: Mutex::new(Vec::new()),
            polled: AtomicU64::new(0),
        }
    }

    /// Runs the traffic for `length`, starting now.
    pub(super) fn run(&self, length: Duration) {
        let started = Instant::now();
        let deadline = started + length;
        std::thread::scope(|scope| {
            for n in 0..CLIENTS {
                scope.spawn(move || self.client(n, deadline));
            }
            scope.spawn(move || self.killer(started, length));
            scope.spawn(move || self.poll_crls(deadline));
        });
    }

    fn client(&self, n: usize, deadline: Instant) {
        let mut rng = Rng(self.seed.wrapping_add((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
        while Instant::now() < deadline {
            let key = chaos_op(self.t, &self.eps, &self.model, self.who, &self.promises, &mut rng);
            count(&mut self.outcomes.lock().expect("outcomes"), key);
        }
    }

    /// One instance at a time, at random moments.
    fn killer(&self, started: Instant, length: Duration) {
        let mut rng = Rng(self.seed ^ 0xDEAD_BEEF);
        for _ in 0..MAX_KILLS {
            std::thread::sleep(rng.millis(1500, 3000));
            // Kills only in the first 60 % of the traffic, so that
            // what they interrupted can settle before the end.
            if started.elapsed() > length * 6 / 10 {
                break;
            }
            self.kill_and_restart(rng.below(3), started, &mut rng);
        }
    }

    fn kill_and_restart(&self, victim: usize, started: Instant, rng: &mut Rng) {
        self.eps.0.lock().expect("endpoints")[victim] = None;
        let mut all = self.instances.lock().expect("instances");
        let i = &mut all[victim];
        let at = started.elapsed().as_secs_f64();
        i.kill();
        *self.last_kill.lock().expect("last kill") = Some(Instant::now());
        std::thread::sleep(rng.millis(200, 800));
        match i.start(Duration::from_secs(60)) {
            Ok(()) => {
                self.kills.lock().expect("kills").push(format!("{} at {at:.1} s", i.name));
                self.eps.0.lock().expect("endpoints")[victim] = Some(Endpoint::of(i));
            }
            Err(e) => self.restart_problems.lock().expect("problems").push(format!("restart after SIGKILL: {e}")),
        }
    }

    /// Every instance's CRL, over and over, kept for the check of the series.
    fn poll_crls(&self, deadline: Instant) {
        while Instant::now() < deadline {
            let current: Vec<Option<Endpoint>> = self.eps.0.lock().expect("endpoints").clone();
            for ep in current.iter().flatten() {
                let name = &ep.name;
                let n = self.polled.fetch_add(1, Ordering::Relaxed);
                let _ = self.t.fetch_crl(&ep.public, &self.crl_dir.join(format!("run-{n:05}-{name}.der")));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub(super) fn finish(self) -> Aftermath {
        Aftermath {
            instances: self.instances.into_inner().expect("instances"),
            model: self.model.into_inner().expect("model"),
            outcomes: self.outcomes.into_inner().expect("outcomes"),
            promises: self.promises.into_inner().expect("promises"),
            kills: self.kills.into_inner().expect("kills"),
            last_kill: self.last_kill.into_inner().expect("last kill"),
            restart_problems: self.restart_problems.into_inner().expect("problems"),
        }
    }
}
