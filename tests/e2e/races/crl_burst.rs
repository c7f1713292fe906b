//! Scenario 2: A burst of revocations against the CRL.

use super::*;

/// 24 revocations sent at once on one instance, five rounds. Right after
/// each 200, in the thread that sent it and on a connection already open,
/// `/crl/issuing.crl` is fetched from the public listener, then an OCSP
/// request (RFC 5019 style, no nonce) is posted, then a new handshake is
/// tried with the certificate. Afterwards `openssl crl -inform DER -text`
/// must find the certificate on that CRL, `openssl ocsp` must read that
/// response as revoked, and the handshake must have been refused.
async fn every_answered_revocation_is_on_the_crl_at_once(backend: Backend) {
    const AT_ONCE: usize = 24;
    const ROUNDS: usize = 5;
    let started = Instant::now();
    let s = Server::start(backend).await;
    let admin = s.admin_pem();
    let t = Tools::of(&s);
    let mut outcomes = BTreeMap::new();
    let mut problems = Vec::new();
    let mut setup = Duration::ZERO;
    for round in 0..ROUNDS {
        let prepared = Instant::now();
        let burst = Burst::prepare(&s, &t, &admin, round, AT_ONCE);
        setup += prepared.elapsed();

        let answers = race(&t, burst.requests);
        for ((d, answer), files) in burst.devices.iter().zip(&answers).zip(&burst.files) {
            let outcome = check_answer(&t, round, d, answer, files, &mut problems);
            count(&mut outcomes, outcome);
        }
    }
    eprintln!(
        "burst of revocations on {backend:?}: {} calls ({ROUNDS} rounds of {AT_ONCE}) in {:.1} s (setup {:.1} s); outcomes:\n{}",
        ROUNDS * AT_ONCE,
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64(),
        table(&outcomes)
    );
    fail_with("burst of revocations", &problems);
}

/// One round: a staff member's devices, the revocations to send at once
/// (each followed by a CRL fetch, an OCSP request and a handshake), and
/// where each one's CRL and OCSP response go.
struct Burst {
    devices: Vec<Cert>,
    requests: Vec<Value>,
    /// (CRL, OCSP response) per device.
    files: Vec<(PathBuf, PathBuf)>,
}

impl Burst {
    fn prepare(s: &Server, t: &Tools, admin: &Path, round: usize, at_once: usize) -> Self {
        let login = format!("burst{round}");
        let user = staff(s, admin, 1, &login);
        let devices: Vec<Cert> =
            (0..at_once).map(|i| enroll(s, t, admin, user, &login, (i == 0).then_some(PASSWORD))).collect();
        let mut requests = Vec::new();
        let mut files = Vec::new();
        for d in &devices {
            let (req, crl, resp) = (t.file("ocsp-req", "der"), t.file("crl", "der"), t.file("ocsp-resp", "der"));
            let o = run(
                "openssl",
                &["ocsp", "-issuer", &t.issuing, "-cert", &path(&d.pem), "-no_nonce", "-reqout", &path(&req)],
                &t.dir,
            );
            assert!(o.status.success(), "{}", text(&o));
            requests.push(json!({
                "api": s.api, "cert": path(admin), "method": "POST",
                "path": format!("/api/v1/certificates/{}/revoke", d.serial),
                "body": json!({"reason": "keyCompromise"}).to_string(),
                "after": [
                    {"kind": "get", "public": s.public, "path": "/crl/issuing.crl", "out": path(&crl)},
                    {"kind": "post", "public": s.public, "path": "/ocsp", "content_type": "application/ocsp-request",
                     "body_file": path(&req), "out": path(&resp)},
                    {"kind": "whoami", "api": s.api, "cert": path(&d.pem)},
                ],
            }));
            files.push((crl, resp));
        }
        Self { devices, requests, files }
    }
}

/// What followed one revocation's answer, against what a 200 promises;
/// returns the outcome for the table.
fn check_answer(
    t: &Tools,
    round: usize,
    d: &Cert,
    answer: &Value,
    (crl, resp): &(PathBuf, PathBuf),
    problems: &mut Vec<String>,
) -> String {
    let r = reply_of(answer);
    if r.code != 0 || r.status != 200 {
        problems.push(format!("round {round}: revoke of {} answered {}", d.serial, r.describe()));
        return format!("round {round}: revoke {}", r.key());
    }
    let steps = &answer["after"];
    let on_crl = match t.openssl_crl(crl) {
        Ok((number, serials)) => {
            let listed = serials.contains(&norm_serial(&d.serial));
            if !listed {
                problems.push(format!(
                    "round {round}: revoke of {} answered 200 but the CRL fetched right after it (number {}) does not list it",
                    d.serial,
                    number.map_or("?".into(), |n| n.to_string())
                ));
            }
            if listed { "on the CRL" } else { "NOT on the CRL" }
        }
        Err(e) => {
            problems.push(format!("round {round}: CRL after revoking {}: {} {e}", d.serial, steps[0]));
            "CRL unreadable"
        }
    };
    let (ocsp, key_compromise) = ocsp_verdict(t, d, resp, &steps[1]);
    if ocsp != "revoked" || !key_compromise {
        problems
            .push(format!("round {round}: revoke of {} answered 200 but OCSP right after it said {ocsp}", d.serial));
    }
    let accepted = steps[2]["accepted"] == true;
    if accepted {
        problems.push(format!(
            "round {round}: revoke of {} answered 200 but a handshake right after it was accepted",
            d.serial
        ));
    }
    format!(
        "round {round}: revoke 200, {on_crl}, OCSP {ocsp}, handshake {}",
        if accepted { "accepted" } else { "refused" }
    )
}

/// The OCSP response in `resp` as `openssl ocsp` reads it for `d`, and
/// whether it names keyCompromise; `step` is how the fetch went.
fn ocsp_verdict(t: &Tools, d: &Cert, resp: &Path, step: &Value) -> (String, bool) {
    let o = run(
        "openssl",
        &[
            "ocsp",
            "-respin",
            &path(resp),
            "-issuer",
            &t.issuing,
            "-cert",
            &path(&d.pem),
            "-VAfile",
            &t.ocsp_signer,
            "-no_nonce",
        ],
        &t.dir,
    );
    let out = text(&o);
    let ocsp = if !out.contains("Response verify OK") {
        format!("unreadable ({step})")
    } else if out.contains(": revoked") {
        "revoked".to_string()
    } else {
        out.lines().find(|l| l.starts_with(&path(&d.pem))).map_or("?".into(), |l| l.to_string())
    };
    (ocsp, out.contains("keyCompromise"))
}
both_backends!(every_answered_revocation_is_on_the_crl_at_once);
