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
    let promise = |serials: &Value, status: &'static str, by: String| {
        let mut p = promises.lock().expect("promises");
        for serial in serials.as_array().into_iter().flatten().filter_map(Value::as_str) {
            p.push(Promise { serial: serial.to_string(), status, by: by.clone() });
        }
    };
    let Some(ep) = eps.pick(rng) else {
        std::thread::sleep(Duration::from_millis(50));
        return "no instance up".into();
    };
    let actor = if rng.below(2) == 0 { &who.admin } else { &who.manager };
    let mut op = rng.below(100);
    {
        // Nothing to resolve: claim instead; nothing to claim: report instead.
        let m = model.lock().expect("model");
        if op >= 90 && m.claimed.is_empty() {
            op = 80;
        }
        if (80..90).contains(&op) && m.open.is_empty() {
            op = 68;
        }
    }
    let target = {
        let m = model.lock().expect("model");
        m.device(rng)
            .map(|d| (d.id, d.user, m.certs[d.current].clone(), m.users[d.user].id, m.users[d.user].login.clone()))
    };
    let Some((device, user_idx, cert, user_id, login)) = target else { return "nothing to do".into() };
    match op {
        0..=13 => {
            let reason = ["keyCompromise", "affiliationChanged", "cessationOfOperation", "keyCompromise"][rng.below(4)];
            let r = t.api(
                &ep.api,
                "POST",
                &format!("/api/v1/certificates/{}/revoke", cert.serial),
                actor,
                Some(&json!({"reason": reason})),
            );
            if r.code == 0 && r.status == 200 {
                promise(&json!([cert.serial]), final_state(&r), format!("revoke ({reason}) answered {}", r.body));
            }
            format!("revoke {}", r.key())
        }
        14..=25 => {
            let r = t.api(&ep.api, "POST", &format!("/api/v1/certificates/{}/hold", cert.serial), actor, None);
            format!("hold {}", r.key())
        }
        26..=37 => {
            let r = t.api(&ep.api, "POST", &format!("/api/v1/certificates/{}/release", cert.serial), actor, None);
            format!("release {}", r.key())
        }
        38..=42 => {
            let r = t.api(&ep.api, "POST", &format!("/api/v1/devices/{device}/lost"), actor, None);
            if r.code == 0 && r.status == 200 {
                promise(&r.body["revoked_serials"], "revoked", format!("lost device {device}"));
            }
            format!("lost {}", r.key())
        }
        43..=45 => {
            {
                let m = model.lock().expect("model");
                if m.users.iter().filter(|u| u.retired).count() * 3 >= m.users.len() {
                    return "retire skipped (a third already retired)".into();
                }
            }
            let r = t.api(&ep.api, "POST", &format!("/api/v1/users/{user_id}/retire"), actor, None);
            if r.code == 0 && r.status == 200 {
                model.lock().expect("model").users[user_idx].retired = true;
                promise(&r.body["revoked_serials"], "revoked", format!("retirement of user {user_id}"));
            }
            format!("retire {}", r.key())
        }
        46..=57 => {
            let Ok((key, csr)) = t.csr(&login) else { return "renew: openssl req failed".into() };
            let r = t.api(&ep.api, "POST", "/api/v1/certificates/renew", &cert.pem, Some(&json!({"csr": csr})));
            if r.code == 0 && r.status == 201 {
                let c = Cert {
                    serial: r.body["serial"].as_str().unwrap_or_default().to_string(),
                    pem: t.pem_with_key(r.body["certificate"].as_str().unwrap_or_default(), &key),
                    device: r.body["device_id"].as_i64().unwrap_or(device),
                };
                promise(&json!([cert.serial]), "superseded", format!("renewal to {}", c.serial));
                model.lock().expect("model").add_cert(user_idx, c);
            }
            format!("renew {}", r.key())
        }
        58..=67 => {
            let r = t.api(&ep.api, "POST", &format!("/api/v1/users/{user_id}/enrollment-codes"), actor, None);
            if r.code != 0 || r.status != 201 {
                return format!("enrollment code {}", r.key());
            }
            let Ok((key, csr)) = t.csr(&login) else { return "enroll: openssl req failed".into() };
            // Redeemed at another (random) instance than the one that issued the code.
            let Some(ep2) = eps.pick(rng) else { return "enroll: no instance up".into() };
            let e = t.public(&ep2.public, "POST", "/api/v1/enroll", Some(&json!({"code": r.body["code"], "csr": csr})));
            if e.code == 0 && e.status == 201 {
                let c = Cert {
                    serial: e.body["serial"].as_str().unwrap_or_default().to_string(),
                    pem: t.pem_with_key(e.body["certificate"].as_str().unwrap_or_default(), &key),
                    device: e.body["device_id"].as_i64().unwrap_or_default(),
                };
                model.lock().expect("model").add_cert(user_idx, c);
            }
            format!("enroll {}", e.key())
        }
        68..=79 => {
            let body = json!({"login_id": login, "password": PASSWORD, "device_id": device});
            let r = t.public(&ep.public, "POST", "/api/v1/emergency", Some(&body));
            if let Some(id) = r.body["escalation_id"].as_i64().filter(|_| r.status == 201) {
                let held = r.body["held_serials"].as_array().into_iter().flatten();
                let held = held.filter_map(Value::as_str).map(str::to_string).collect();
                model.lock().expect("model").open.push(Escalation { id, held });
            }
            format!("emergency report {}", r.key())
        }
        80..=89 => {
            let e = {
                let mut m = model.lock().expect("model");
                if m.open.is_empty() {
                    return "claim: none open".into();
                }
                let i = rng.below(m.open.len());
                m.open.swap_remove(i)
            };
            let r = t.api(&ep.api, "POST", &format!("/api/v1/escalations/{}/claim", e.id), &who.admin, None);
            let claimed = r.status == 200
                || r.body["error"]["message"].as_str().is_some_and(|m| m.contains("already claimed by user 1"));
            let mut m = model.lock().expect("model");
            if claimed {
                m.claimed.push(e);
            } else if r.code != 0 {
                m.open.push(e);
            }
            format!("claim {}", r.key())
        }
        _ => {
            let e = {
                let mut m = model.lock().expect("model");
                if m.claimed.is_empty() {
                    return "resolve: none claimed".into();
                }
                let i = rng.below(m.claimed.len());
                m.claimed.swap_remove(i)
            };
            let outcome = ["released", "released", "revoked", "rejected"][rng.below(4)];
            let route = format!("/api/v1/escalations/{}/resolve", e.id);
            let body = json!({"outcome": outcome, "note": "確認済み"});
            let ep2 = eps.pick(rng);
            let (r, raced) = match (outcome, e.held.first(), ep2) {
                // Half the releases race a revocation of the held certificate
                // sent at the same moment (see tests/py/race.py), often to
                // another instance.
                ("released", Some(serial), Some(ep2)) if rng.below(2) == 0 => {
                    let answers = race_try(
                        t,
                        vec![
                            json!({"api": ep.api, "cert": path(&who.admin), "method": "POST", "path": route,
                                   "body": body.to_string(), "delay_ms": rng.below(3) as f64 * 0.5}),
                            json!({"api": ep2.api, "cert": path(actor), "method": "POST",
                                   "path": format!("/api/v1/certificates/{serial}/revoke"),
                                   "body": json!({"reason": "keyCompromise"}).to_string(),
                                   "delay_ms": rng.below(3) as f64 * 0.5}),
                        ],
                    );
                    match answers {
                        Ok(a) => {
                            let revoke = reply_of(&a[1]);
                            if revoke.code == 0 && revoke.status == 200 {
                                promise(
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
                _ => (t.api(&ep.api, "POST", &route, &who.admin, Some(&body)), String::new()),
            };
            if r.code == 0 && r.status == 200 && outcome == "revoked" {
                promise(&r.body["serials"], "revoked", format!("escalation {} resolved as revoked", e.id));
            }
            if r.code != 0 {
                model.lock().expect("model").claimed.push(e);
            }
            format!("resolve {outcome} {}{raced}", r.key())
        }
    }
}
