//! Checking every instance against the database once the chaos is over:
//! OCSP, the served CRL and the handshake for every certificate.

use super::*;

/// One check of every instance against the database: OCSP and the served
/// CRL for every certificate (and every serial any CRL lists; those no
/// client knows of are looked up and added to `truth`). Returns the
/// disagreements.
pub(super) fn compare_with_database(
    t: &Tools,
    eps: &[Endpoint],
    admin: &Path,
    certs: &[Cert],
    truth: &mut HashMap<String, (String, Option<String>)>,
    crl_dir: &Path,
    pass: usize,
) -> Vec<String> {
    let mut problems = Vec::new();
    let pems: Vec<PathBuf> = certs.iter().map(|c| c.pem.clone()).collect();
    for ep in eps {
        let name = &ep.name;
        match t.ocsp(&ep.public, &pems) {
            Ok(answers) => {
                for (c, got) in certs.iter().zip(answers) {
                    let (status, reason) = &truth[&norm_serial(&c.serial)];
                    let want = ocsp_for(status, reason.as_deref());
                    if got != want {
                        problems.push(format!("{name}: OCSP says {got} for {} but the database says {want}", c.serial));
                    }
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
        let file = crl_dir.join(format!("final-{pass:03}-{name}.der"));
        if let Err(e) = t.fetch_crl(&ep.public, &file) {
            problems.push(format!("{name}: CRL: {e}"));
        }
    }
    // The CRLs just fetched, read by Python cryptography.
    let facts = python_json("crl_series.py", &[&path(crl_dir), &t.issuing], &t.dir);
    for name in eps.iter().map(|e| &e.name) {
        let Some(crl) = facts.get(format!("final-{pass:03}-{name}.der")) else { continue };
        if crl["signature_valid"] != true {
            problems.push(format!("{name}: the CRL does not verify: {crl}"));
            continue;
        }
        let listed: HashMap<String, Option<String>> = crl["revoked"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (norm_serial(k), v.as_str().map(str::to_string))).collect())
            .unwrap_or_default();
        for serial in listed.keys() {
            if !truth.contains_key(serial) {
                // Issued by a call whose answer was lost to a SIGKILL: ask the database.
                match db_state(t, &eps[0].api, admin, serial) {
                    Ok(state) => {
                        truth.insert(serial.clone(), state);
                    }
                    Err(e) => problems.push(format!("{name}: the CRL lists {serial}, the admin API: {e}")),
                }
            }
        }
        for (serial, (status, reason)) in truth.iter() {
            let want = match status.as_str() {
                "valid" => None,
                "on_hold" => Some("certificate_hold".to_string()),
                _ => Some(snake(reason.as_deref().unwrap_or("unspecified"))),
            };
            let got = listed.get(serial).map(|r| r.clone().unwrap_or_else(|| "unspecified".into()));
            if got != want {
                problems.push(format!(
                    "{name}: CRL number {} {} {serial} but the database says {status}{}",
                    crl["crl_number"],
                    got.map_or("does not list".to_string(), |r| format!("lists ({r})")),
                    reason.as_ref().map_or(String::new(), |r| format!(" {r}"))
                ));
            }
        }
    }
    problems
}

/// Every instance's handshake decision for every certificate against the
/// database (one thread per instance).
pub(super) fn compare_handshakes(
    t: &Tools,
    eps: &[Endpoint],
    certs: &[Cert],
    truth: &HashMap<String, (String, Option<String>)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = eps
            .iter()
            .map(|ep| {
                let name = &ep.name;
                scope.spawn(move || {
                    let mut p = Vec::new();
                    for c in certs {
                        let (status, _) = &truth[&norm_serial(&c.serial)];
                        let r = t.handshake(&ep.api, &c.pem);
                        let accepted = r.code == 0 && r.status == 200;
                        if accepted != (status == "valid") {
                            p.push(format!(
                                "{name}: the handshake {} {} but the database says {status}",
                                if accepted { "accepts".to_string() } else { format!("refuses ({})", r.key()) },
                                c.serial
                            ));
                        }
                    }
                    p
                })
            })
            .collect();
        for h in handles {
            problems.extend(h.join().expect("handshake thread"));
        }
    });
    problems
}
