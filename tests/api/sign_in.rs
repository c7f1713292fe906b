//! The emergency sign-in and enrollment codes against guessers (issue 10):
//! parallel guesses get no more password checks than the limit, every
//! failure answers alike, an attacker's source backing off leaves the owner
//! free to report from elsewhere, and a wrong enrollment code says nothing
//! about whether its id exists.

use std::net::IpAddr;

use connect_pki_domain::sign_in::{FIRST_BACKOFF, TRIES_PER_SOURCE};
use connect_pki_e2e::client::{self, Req};
use connect_pki_e2e::fixtures::PASSWORD;
use connect_pki_e2e::{Backend, TestApp, both_backends, spawn_app};
use serde_json::{Value, json};

const OWNER: [u8; 4] = [127, 0, 0, 1];
const ATTACKER: [u8; 4] = [127, 0, 0, 2];

async fn report_from(app: &TestApp, from: [u8; 4], login: &str, password: &str, device: i64) -> (u16, Value) {
    let body = json!({"login_id": login, "password": password, "device_id": device});
    app.public_api_from(IpAddr::from(from), "POST", "/api/v1/emergency", Some(&body)).await
}

/// Audit rows of emergency sign-ins on `user` with `outcome`.
async fn sign_ins(app: &TestApp, user: i64, outcome: &str) -> usize {
    let (status, log) = app.api("GET", "/api/v1/audit?limit=10000", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{log}");
    let target = format!("user:{user}");
    log.as_array()
        .expect("audit")
        .iter()
        .filter(|r| r["action"] == "emergency.sign_in" && r["target"] == target.as_str() && r["outcome"] == outcome)
        .count()
}

/// 20 wrong guesses at once from one source, for several accounts in turn:
/// the count is taken before each check under the writer lock, so only the
/// source's tries are checked.
async fn parallel_guesses_get_no_more_checks_than_the_limit(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..5 {
        let login = format!("guessed.at.{round}");
        let d = app.device(&login).await;
        let mut guesses = tokio::task::JoinSet::new();
        for i in 0..20 {
            let body = json!({"login_id": login, "password": format!("guess number {i}"), "device_id": d.device_id});
            let req = Req::new("POST", "/api/v1/emergency").json(&body);
            let tls = client::tls_config(&app.ca.root_der, None);
            guesses.spawn(client::https_from(app.api, IpAddr::from(ATTACKER), tls, req));
        }
        while let Some(reply) = guesses.join_next().await {
            let reply = reply.expect("task").expect("answer");
            let out = reply.json();
            assert_eq!((reply.status, out["error"]["code"].as_str()), (401, Some("sign_in_failed")), "{out}");
        }
        let checked = sign_ins(&app, d.user_id, "password checked").await;
        let limit = usize::try_from(TRIES_PER_SOURCE).expect("small");
        assert_eq!(checked, limit, "round {round}: password checks of 20 parallel guesses");
        // Even the right password waits now, from that source.
        let (status, out) = report_from(&app, ATTACKER, &login, PASSWORD, d.device_id).await;
        assert_eq!((status, out["error"]["code"].as_str()), (401, Some("sign_in_failed")), "{out}");
        assert_eq!(app.ocsp_status(&d.id).await, "good");
    }
}
both_backends!(parallel_guesses_get_no_more_checks_than_the_limit);

/// An unknown login ID, a wrong password and an attempt the throttle
/// refuses get the same status and the same body.
async fn every_failed_sign_in_answers_alike(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("same.answer").await;
    let unknown = report_from(&app, ATTACKER, "no.such.person", "whatever it is", d.device_id).await;
    let wrong = report_from(&app, ATTACKER, "same.answer", "not the password", d.device_id).await;
    for _ in 1..TRIES_PER_SOURCE {
        report_from(&app, ATTACKER, "same.answer", "not the password", d.device_id).await;
    }
    let refused = report_from(&app, ATTACKER, "same.answer", PASSWORD, d.device_id).await;
    assert_eq!(unknown.0, 401, "{}", unknown.1);
    assert_eq!(unknown, wrong, "unknown login ID vs wrong password");
    assert_eq!(unknown, refused, "unknown login ID vs a source backing off");
    assert_eq!(sign_ins(&app, d.user_id, "password checked").await, usize::try_from(TRIES_PER_SOURCE).expect("small"));
}
both_backends!(every_failed_sign_in_answers_alike);

/// Someone who knows only the login ID exhausts their source's tries; the
/// owner, from another network, still reports the device lost. The
/// attacker's source gets one more check only after its backoff.
async fn an_attacker_source_does_not_lock_out_the_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let d = app.device("lost.phone").await;
    for i in 0..TRIES_PER_SOURCE * 2 {
        let (status, out) = report_from(&app, ATTACKER, "lost.phone", &format!("guess {i}"), d.device_id).await;
        assert_eq!(status, 401, "{out}");
    }
    let (status, out) = report_from(&app, OWNER, "lost.phone", PASSWORD, d.device_id).await;
    assert_eq!(status, 201, "the owner from another source: {out}");
    assert_eq!(app.ocsp_status(&d.id).await, "revoked certificateHold");

    let before = sign_ins(&app, d.user_id, "password checked").await;
    report_from(&app, ATTACKER, "lost.phone", "still guessing", d.device_id).await;
    assert_eq!(sign_ins(&app, d.user_id, "password checked").await, before, "checked while backing off");
    app.clock.advance(FIRST_BACKOFF);
    report_from(&app, ATTACKER, "lost.phone", "guess after the wait", d.device_id).await;
    assert_eq!(sign_ins(&app, d.user_id, "password checked").await, before + 1, "no check after the backoff");
}
both_backends!(an_attacker_source_does_not_lock_out_the_owner);

async fn enroll(app: &TestApp, code: &str) -> (u16, Value) {
    app.public_api("POST", "/api/v1/enroll", Some(&json!({"code": code, "generate_key": true, "password": PASSWORD})))
        .await
}

/// A wrong secret answers the same for an id that exists, one that does not,
/// and a code already locked; only the right secret learns the code's state.
async fn a_wrong_code_says_nothing_about_its_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register(&app.admin, 1, "code.holder", "staff").await;
    let code = app.code_for(&app.admin, user).await;
    let id = app.newest_code_id().await;
    let unknown = enroll(&app, "999999-0000-0000-0000-0000").await;
    assert_eq!(unknown.0, 401, "{}", unknown.1);
    assert_eq!(enroll(&app, "0000-0000-0000-0000").await, unknown, "a code as handed out now, unknown");
    for i in 0..connect_pki_domain::enrollment::MAX_FAILED_ATTEMPTS {
        let wrong = enroll(&app, &format!("{id}-0000-0000-0000-000{i}")).await;
        assert_eq!(wrong, unknown, "try {i}: an existing id vs an unknown one");
    }
    let after_lock = enroll(&app, &format!("{id}-0000-0000-0000-0009")).await;
    assert_eq!(after_lock, unknown, "a locked code vs an unknown id");
    let (status, out) = enroll(&app, &format!("{id}-{code}")).await;
    assert_eq!((status, out["error"]["code"].as_str()), (403, Some("code_locked")), "{out}");
}
both_backends!(a_wrong_code_says_nothing_about_its_id);
