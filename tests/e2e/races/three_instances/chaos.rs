//! The random operations the client threads send during the chaos.

use super::*;

/// One random operation against a random live instance; returns its outcome
/// for the summary (`revoke 200`, `renew 409 invalid_transition`, `hold curl 7` …).
pub(super) fn chaos_op(
    t: &Tools,
    eps: &Endpoints,
    model: &Mutex<Model>,
    who: &Actors,
    promises: &Mutex<Vec<Promise>>,
    rng: &mut Rng,
) -> String {
    let Some(ep) = eps.pick(rng) else {
        std::thread::sleep(Duration::from_millis(50));
        return "no instance up".into();
    };
    let actor = if rng.below(2) == 0 { &who.admin } else { &who.manager };
    let kind = feasible(rng.below(100), &model.lock().expect("model"));
    let target = {
        let m = model.lock().expect("model");
        m.device(rng).map(|d| Target {
            device: d.id,
            user_idx: d.user,
            cert: m.certs[d.current].clone(),
            user_id: m.users[d.user].id,
            login: m.users[d.user].login.clone(),
        })
    };
    let Some(target) = target else { return "nothing to do".into() };
    let op = Op { t, eps, model, who, promises, ep, actor, target };
    match kind {
        0..=13 => op.revoke(rng),
        14..=25 => op.hold(),
        26..=37 => op.release(),
        38..=42 => op.lost(),
        43..=45 => op.retire(),
        46..=57 => op.renew(),
        58..=67 => op.enroll(rng),
        68..=79 => op.report(),
        80..=89 => op.claim(rng),
        _ => op.resolve(rng),
    }
}

/// Nothing to resolve: claim instead; nothing to claim: report instead.
fn feasible(mut kind: usize, m: &Model) -> usize {
    if kind >= 90 && m.claimed.is_empty() {
        kind = 80;
    }
    if (80..90).contains(&kind) && m.open.is_empty() {
        kind = 68;
    }
    kind
}

/// The device an operation is about, with its newest certificate and its user.
struct Target {
    device: i64,
    user_idx: usize,
    cert: Cert,
    user_id: i64,
    login: String,
}

/// One operation in the making: the shared state, the instance it goes to,
/// who sends it and what it is about.
struct Op<'a> {
    t: &'a Tools,
    eps: &'a Endpoints,
    model: &'a Mutex<Model>,
    who: &'a Actors,
    promises: &'a Mutex<Vec<Promise>>,
    ep: Endpoint,
    actor: &'a Path,
    target: Target,
}

impl Op<'_> {
    fn promise(&self, serials: &Value, status: &'static str, by: String) {
        let mut p = self.promises.lock().expect("promises");
        for serial in serials.as_array().into_iter().flatten().filter_map(Value::as_str) {
            p.push(Promise { serial: serial.to_string(), status, by: by.clone() });
        }
    }

    fn post(&self, route: &str, body: Option<&Value>) -> Reply {
        self.t.api(&self.ep.api, "POST", route, self.actor, body)
    }

    fn revoke(&self, rng: &mut Rng) -> String {
        let serial = &self.target.cert.serial;
        let reason = ["keyCompromise", "affiliationChanged", "cessationOfOperation", "keyCompromise"][rng.below(4)];
        let r = self.post(&format!("/api/v1/certificates/{serial}/revoke"), Some(&json!({"reason": reason})));
        if r.code == 0 && r.status == 200 {
            self.promise(&json!([serial]), final_state(&r), format!("revoke ({reason}) answered {}", r.body));
        }
        format!("revoke {}", r.key())
    }

    fn hold(&self) -> String {
        let r = self.post(&format!("/api/v1/certificates/{}/hold", self.target.cert.serial), None);
        format!("hold {}", r.key())
    }

    fn release(&self) -> String {
        let r = self.post(&format!("/api/v1/certificates/{}/release", self.target.cert.serial), None);
        format!("release {}", r.key())
    }

    fn lost(&self) -> String {
        let device = self.target.device;
        let r = self.post(&format!("/api/v1/devices/{device}/lost"), None);
        if r.code == 0 && r.status == 200 {
            self.promise(&r.body["revoked_serials"], "revoked", format!("lost device {device}"));
        }
        format!("lost {}", r.key())
    }

    fn retire(&self) -> String {
        {
            let m = self.model.lock().expect("model");
            if m.users.iter().filter(|u| u.retired).count() * 3 >= m.users.len() {
                return "retire skipped (a third already retired)".into();
            }
        }
        let user_id = self.target.user_id;
        let r = self.post(&format!("/api/v1/users/{user_id}/retire"), None);
        if r.code == 0 && r.status == 200 {
            self.model.lock().expect("model").users[self.target.user_idx].retired = true;
            self.promise(&r.body["revoked_serials"], "revoked", format!("retirement of user {user_id}"));
        }
        format!("retire {}", r.key())
    }

    /// The certificate in `body` (an enroll or renew answer) with its key.
    fn cert_of(&self, body: &Value, key: &Path, device: i64) -> Cert {
        Cert {
            serial: body["serial"].as_str().unwrap_or_default().to_string(),
            pem: self.t.pem_with_key(body["certificate"].as_str().unwrap_or_default(), key),
            device: body["device_id"].as_i64().unwrap_or(device),
        }
    }

    fn renew(&self) -> String {
        let Target { device, user_idx, cert, login, .. } = &self.target;
        let Ok((key, csr)) = self.t.csr(login) else { return "renew: openssl req failed".into() };
        let r = self.t.api(&self.ep.api, "POST", "/api/v1/certificates/renew", &cert.pem, Some(&json!({"csr": csr})));
        if r.code == 0 && r.status == 201 {
            let c = self.cert_of(&r.body, &key, *device);
            self.promise(&json!([cert.serial]), "superseded", format!("renewal to {}", c.serial));
            self.model.lock().expect("model").add_cert(*user_idx, c);
        }
        format!("renew {}", r.key())
    }

    fn enroll(&self, rng: &mut Rng) -> String {
        let r = self.post(&format!("/api/v1/users/{}/enrollment-codes", self.target.user_id), None);
        if r.code != 0 || r.status != 201 {
            return format!("enrollment code {}", r.key());
        }
        let Ok((key, csr)) = self.t.csr(&self.target.login) else { return "enroll: openssl req failed".into() };
        // Redeemed at another (random) instance than the one that issued the code.
        let Some(ep2) = self.eps.pick(rng) else { return "enroll: no instance up".into() };
        let body = json!({"code": r.body["code"], "csr": csr});
        let e = self.t.open(&ep2.api, "POST", "/api/v1/enroll", Some(&body));
        if e.code == 0 && e.status == 201 {
            let c = self.cert_of(&e.body, &key, 0);
            self.model.lock().expect("model").add_cert(self.target.user_idx, c);
        }
        format!("enroll {}", e.key())
    }

    fn report(&self) -> String {
        let body = json!({"login_id": self.target.login, "password": PASSWORD, "device_id": self.target.device});
        let r = self.t.open(&self.ep.api, "POST", "/api/v1/emergency", Some(&body));
        if let Some(id) = r.body["escalation_id"].as_i64().filter(|_| r.status == 201) {
            let held = r.body["held_serials"].as_array().into_iter().flatten();
            let held = held.filter_map(Value::as_str).map(str::to_string).collect();
            self.model.lock().expect("model").open.push(Escalation { id, held });
        }
        format!("emergency report {}", r.key())
    }

    /// One escalation of `list` at random, taken out of it.
    fn take_one(&self, rng: &mut Rng, list: impl FnOnce(&mut Model) -> &mut Vec<Escalation>) -> Option<Escalation> {
        let mut m = self.model.lock().expect("model");
        let l = list(&mut m);
        if l.is_empty() {
            return None;
        }
        let i = rng.below(l.len());
        Some(l.swap_remove(i))
    }

    fn claim(&self, rng: &mut Rng) -> String {
        let Some(e) = self.take_one(rng, |m| &mut m.open) else { return "claim: none open".into() };
        let r = self.t.api(&self.ep.api, "POST", &format!("/api/v1/escalations/{}/claim", e.id), &self.who.admin, None);
        let claimed = r.status == 200
            || r.body["error"]["message"].as_str().is_some_and(|m| m.contains("already claimed by user 1"));
        let mut m = self.model.lock().expect("model");
        if claimed {
            m.claimed.push(e);
        } else if r.code != 0 {
            m.open.push(e);
        }
        format!("claim {}", r.key())
    }

    fn resolve(&self, rng: &mut Rng) -> String {
        let Some(e) = self.take_one(rng, |m| &mut m.claimed) else { return "resolve: none claimed".into() };
        let outcome = ["released", "released", "revoked", "rejected"][rng.below(4)];
        let route = format!("/api/v1/escalations/{}/resolve", e.id);
        let body = json!({"outcome": outcome, "note": "確認済み"});
        let ep2 = self.eps.pick(rng);
        let (r, raced) = match (outcome, e.held.first(), ep2) {
            // Half the releases race a revocation of the held certificate
            // sent at the same moment (see tests/py/race.py), often to
            // another instance.
            ("released", Some(serial), Some(ep2)) if rng.below(2) == 0 => {
                self.release_racing_revoke(&route, &body, serial, &ep2, rng)
            }
            _ => (self.t.api(&self.ep.api, "POST", &route, &self.who.admin, Some(&body)), String::new()),
        };
        if r.code == 0 && r.status == 200 && outcome == "revoked" {
            self.promise(&r.body["serials"], "revoked", format!("escalation {} resolved as revoked", e.id));
        }
        if r.code != 0 {
            self.model.lock().expect("model").claimed.push(e);
        }
        format!("resolve {outcome} {}{raced}", r.key())
    }

    /// The release (`route`, `body`) sent here and a revocation of `serial`
    /// sent to `ep2` at the same moment; the release's answer and what the
    /// revocation answered, for the outcome.
    fn release_racing_revoke(
        &self,
        route: &str,
        body: &Value,
        serial: &str,
        ep2: &Endpoint,
        rng: &mut Rng,
    ) -> (Reply, String) {
        let answers = race_try(
            self.t,
            vec![
                json!({"api": self.ep.api, "cert": path(&self.who.admin), "method": "POST", "path": route,
                       "body": body.to_string(), "delay_ms": rng.below(3) as f64 * 0.5}),
                json!({"api": ep2.api, "cert": path(self.actor), "method": "POST",
                       "path": format!("/api/v1/certificates/{serial}/revoke"),
                       "body": json!({"reason": "keyCompromise"}).to_string(),
                       "delay_ms": rng.below(3) as f64 * 0.5}),
            ],
        );
        match answers {
            Ok(a) => {
                let revoke = reply_of(&a[1]);
                if revoke.code == 0 && revoke.status == 200 {
                    self.promise(
                        &json!([serial]),
                        final_state(&revoke),
                        format!("revoke racing a release answered {}", revoke.body),
                    );
                }
                (reply_of(&a[0]), format!(" racing revoke {}", revoke.key()))
            }
            Err(err) => (Reply { code: -1, status: 0, body: Value::String(err) }, " racing revoke".into()),
        }
    }
}
