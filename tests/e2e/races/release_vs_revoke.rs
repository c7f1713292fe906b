//! Scenario 1: Release against revoke.

use super::*;

/// A staff member reports a lost device (hold + escalation), 行政管理課
/// claims the report, then at the same moment 行政管理課 resolves it as
/// *released* and the facility manager revokes the certificate
/// (keyCompromise). Whatever the order, a revoke answered 200 must leave the
/// certificate revoked — in the database, in OCSP and at our handshake — and
/// all three must agree. The two requests leave together (connections open
/// beforehand); from round to round one of them is held back by 0–3 ms so
/// that both orders and every overlap in between are tried.
async fn release_racing_revoke_never_undoes_the_revocation(backend: Backend) {
    const OFFSETS_MS: [f64; 8] = [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0];
    let started = Instant::now();
    let rounds = if backend == Backend::Postgres { 32 } else { 16 };
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let t = Tools::of(&s);
    let (facility, manager) = facility_with_manager(&s, &admin, "race.mgr", "レース施設", "race.mgr@example.test");
    let user = staff(&s, &manager, facility, "race.staff");
    let devices: Vec<Cert> =
        (0..rounds).map(|i| enroll(&s, &t, &manager, user, "race.staff", (i == 0).then_some(PASSWORD))).collect();
    let setup = started.elapsed();

    let mut outcomes = BTreeMap::new();
    let mut problems = Vec::new();
    for (round, d) in devices.iter().enumerate() {
        let id = report_and_claim(&s, &t, &admin, round, d);
        // Positive: the revoke leaves later; negative: the release does.
        let offset = OFFSETS_MS[round % OFFSETS_MS.len()];
        let answers = race(
            &t,
            vec![
                json!({"api": s.api, "cert": path(&admin), "method": "POST",
                       "path": format!("/api/v1/escalations/{id}/resolve"),
                       "body": json!({"outcome": "released", "note": "端末が見つかった"}).to_string(),
                       "delay_ms": (-offset).max(0.0)}),
                json!({"api": s.api, "cert": path(&manager), "method": "POST",
                       "path": format!("/api/v1/certificates/{}/revoke", d.serial),
                       "body": json!({"reason": "keyCompromise"}).to_string(),
                       "delay_ms": offset.max(0.0)}),
            ],
        );
        let round = Round {
            here: format!("round {round} (offset {offset} ms, serial {})", d.serial),
            resolve: reply_of(&answers[0]),
            revoke: reply_of(&answers[1]),
            after: Observed::of(&s, &t, &admin, d),
        };
        count(&mut outcomes, round.outcome());
        round.check(&mut problems);
    }
    eprintln!(
        "release racing revoke on {backend:?}: {rounds} rounds in {:.1} s (setup {:.1} s); outcomes:\n{}",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        table(&outcomes)
    );
    fail_with("release racing revoke", &problems);
}

/// The staff member reports `d` lost and 行政管理課 claims the report;
/// returns the escalation.
fn report_and_claim(s: &Server, t: &Tools, admin: &Path, round: usize, d: &Cert) -> i64 {
    let report = json!({"login_id": "race.staff", "password": PASSWORD, "device_id": d.device});
    let r = t.open(&s.api, "POST", "/api/v1/emergency", Some(&report));
    assert_eq!(r.status, 201, "round {round}: emergency report: {}", r.describe());
    assert_eq!(r.body["held_serials"], json!([d.serial]), "round {round}: {}", r.describe());
    let id = r.body["escalation_id"].as_i64().expect("escalation id");
    let r = t.api(&s.api, "POST", &format!("/api/v1/escalations/{id}/claim"), admin, None);
    assert_eq!(r.status, 200, "round {round}: claim: {}", r.describe());
    id
}

/// The certificate after the race, as the database, OCSP and our handshake see it.
struct Observed {
    db: Result<(String, Option<String>), String>,
    db_s: String,
    ocsp_s: String,
    hs: Reply,
    accepted: bool,
}

impl Observed {
    fn of(s: &Server, t: &Tools, admin: &Path, d: &Cert) -> Self {
        let db = db_state(t, &s.api, admin, &d.serial);
        let ocsp = t.ocsp(&s.public, std::slice::from_ref(&d.pem)).map(|v| v[0].clone());
        let hs = t.handshake(&s.api, &d.pem);
        let accepted = hs.code == 0 && hs.status == 200;
        let db_s = match &db {
            Ok((st, reason)) => format!("{st}{}", reason.as_ref().map_or(String::new(), |r| format!(" {r}"))),
            Err(e) => format!("GET failed: {e}"),
        };
        let ocsp_s = ocsp.unwrap_or_else(|e| format!("error: {e}"));
        Self { db, db_s, ocsp_s, hs, accepted }
    }
}

/// One round's two answers and what followed them.
struct Round {
    here: String,
    resolve: Reply,
    revoke: Reply,
    after: Observed,
}

impl Round {
    fn outcome(&self) -> String {
        let (revoke, resolve) = (&self.revoke, &self.resolve);
        let revoke_said = format!(
            "revoke {}{}",
            revoke.key(),
            revoke.body["status"]
                .as_str()
                .map_or(String::new(), |st| format!(" ({st}, changed={})", revoke.body["changed"]))
        );
        let resolve_said = format!(
            "resolve {}{}",
            resolve.key(),
            resolve.body["serials"].as_array().map_or(String::new(), |a| format!(" (released {})", a.len()))
        );
        let Observed { db_s, ocsp_s, accepted, .. } = &self.after;
        format!(
            "{revoke_said}, {resolve_said} → db {db_s}, OCSP {ocsp_s}, handshake {}",
            if *accepted { "accepted" } else { "refused" }
        )
    }

    /// A revoke answered 200 leaves the certificate revoked, and the
    /// database, OCSP and the handshake agree.
    fn check(&self, problems: &mut Vec<String>) {
        let (here, revoke) = (&self.here, &self.revoke);
        let Observed { db, db_s, ocsp_s, hs, accepted } = &self.after;
        for (what, r) in [("resolve", &self.resolve), ("revoke", revoke)] {
            if r.code != 0 || r.status >= 500 {
                problems.push(format!("{here}: {what} answered {}", r.describe()));
            }
        }
        let Ok((status, reason)) = db else {
            problems.push(format!("{here}: the admin API cannot say what the database holds: {db_s}"));
            return;
        };
        if revoke.code == 0 && revoke.status == 200 {
            if status != "revoked" {
                problems
                    .push(format!("{here}: revoke answered 200 but the certificate ended {status} in the database"));
            }
            if revoke.body["status"] != "revoked" {
                problems.push(format!("{here}: revoke answered 200 reporting status {}", revoke.body["status"]));
            }
            if !ocsp_s.starts_with("revoked") {
                problems.push(format!("{here}: revoke answered 200 but OCSP says {ocsp_s}"));
            }
        }
        let want = ocsp_for(status, reason.as_deref());
        if *ocsp_s != want {
            problems.push(format!("{here}: the database says {db_s} but OCSP says {ocsp_s}"));
        }
        if *accepted != (status == "valid") {
            problems.push(format!(
                "{here}: the database says {db_s} but our handshake {}",
                if *accepted { "accepts it".to_string() } else { format!("refuses it ({})", hs.key()) }
            ));
        }
    }
}
both_backends!(release_racing_revoke_never_undoes_the_revocation);
