//! Who relies on us (issue 14, items 1, 2 and 5): every OCSP answer and CRL
//! download is recorded under the relying party that asked (the name config
//! gives its network, or else its /24 or /64), every handshake under its
//! certificate; `GET /api/v1/relying-parties` warns about a party whose CRL
//! predates a revocation, `GET /api/v1/certificates/{serial}/use` says when
//! a certificate was last used and what each party was told; the record
//! is pruned after the retention period; and who may read which is checked.

use std::net::IpAddr;
use std::sync::Arc;

use connect_pki_e2e::client::{Identity, Req, http_from, https_from, tls_config};
use connect_pki_e2e::{AppOptions, Backend, TestApp, both_backends, spawn_app_with};
use connect_pki_ra::sightings::{Names, RecordSettings};
use serde_json::{Value, json};

use crate::world::world;

const HOSPITAL: &str = "病院システム";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn named() -> AppOptions {
    let pairs = [(HOSPITAL.to_string(), vec!["127.0.0.2".to_string()])];
    AppOptions::with(|c| {
        c.ra.relying = RecordSettings {
            names: Names::parse(pairs.iter().map(|(n, v)| (n, v))).expect("names"),
            // The test flushes by reading; the worker stays out of its way.
            flush_every: std::time::Duration::from_secs(3600),
            ..RecordSettings::default()
        }
    })
}

/// An OCSP question about `who` from `from`; the answer's status.
async fn ocsp_from(app: &TestApp, from: &str, who: &Identity) -> String {
    let request = connect_pki_e2e::ocsp::request(&app.ca.issuing_der, &who.cert_der);
    let req = Req::new("POST", "/ocsp").body("application/ocsp-request", request);
    let reply = http_from(app.public, ip(from), req).await.expect("OCSP");
    connect_pki_e2e::ocsp::status(&reply.body, &app.ca.ocsp_der)
}

/// Downloads the CRL from `from`; its number.
async fn crl_from(app: &TestApp, from: &str) -> u64 {
    let reply = http_from(app.public, ip(from), Req::new("GET", "/crl/issuing.crl")).await.expect("CRL");
    assert_eq!(reply.status, 200);
    let (_, crl) = x509_parser::parse_x509_crl(&reply.body).expect("a CRL");
    crl.crl_number().and_then(|n| u64::try_from(n.clone()).ok()).expect("CRL number")
}

/// `whoami` with `who`'s certificate from `from`: whether it got in.
async fn handshake_from(app: &TestApp, from: &str, who: &Identity) -> bool {
    let tls = tls_config(&app.ca.root_der, Some(who));
    https_from(app.api, ip(from), tls, Req::new("GET", "/api/v1/whoami")).await.is_ok_and(|r| r.status == 200)
}

/// The console page of relying parties, as `who` sees it (200 only).
async fn console_page(app: &TestApp, who: &Identity) -> String {
    let reply = app.try_mtls(Some(who), Req::new("GET", "/console/relying-parties")).await.expect("page");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

fn party<'a>(list: &'a Value, name: &str) -> &'a Value {
    let all = list["relying_parties"].as_array().expect("relying_parties");
    all.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} not listed: {list}"))
}

fn ocsp_of<'a>(used: &'a Value, name: &str) -> &'a Value {
    let all = used["ocsp"].as_array().expect("ocsp");
    all.iter().find(|p| p["relying_party"] == name).unwrap_or_else(|| panic!("{name} not in: {used}"))
}

async fn relying_parties_are_recorded_and_warned_about(backend: Backend) {
    let app = spawn_app_with(backend, named()).await;
    let admin = app.admin.clone();
    let d = app.device("rp-device").await;
    let serial = d.id.serial();
    let used_path = format!("/api/v1/certificates/{serial}/use");

    // Before any relying party asked: no OCSP question recorded (enrolling
    // made the device's first handshakes).
    let (status, used) = app.api("GET", &used_path, Some(&admin), None).await;
    assert_eq!(status, 200, "{used}");
    assert_eq!(used["ocsp"], json!([]), "{used}");
    let before = used["handshakes"].as_i64().expect("handshakes");

    // Two relying parties ask and one holds the CRL; the device gets in.
    assert_eq!(ocsp_from(&app, "127.0.0.1", &d.id).await, "good");
    assert_eq!(ocsp_from(&app, "127.0.0.2", &d.id).await, "good");
    assert_eq!(ocsp_from(&app, "127.0.0.2", &d.id).await, "good");
    let held = crl_from(&app, "127.0.0.2").await;
    assert!(handshake_from(&app, "127.0.0.3", &d.id).await);

    let (status, used) = app.api("GET", &used_path, Some(&admin), None).await;
    assert_eq!(status, 200, "{used}");
    assert_eq!(used["handshakes"], before + 1, "{used}");
    assert_eq!(used["last_handshake_from"], "127.0.0.3", "{used}");
    assert!(used["last_handshake_at"].is_string(), "{used}");
    assert_eq!(ocsp_of(&used, HOSPITAL)["queries"], 2, "{used}");
    assert_eq!(ocsp_of(&used, HOSPITAL)["last_answer"], "good", "{used}");
    assert_eq!(ocsp_of(&used, "127.0.0.0/24")["last_answer"], "good", "{used}");
    assert!(ocsp_of(&used, "127.0.0.0/24")["first_revoked_at"].is_null(), "{used}");

    let (status, list) = app.api("GET", "/api/v1/relying-parties", Some(&admin), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(party(&list, HOSPITAL)["crls"][0]["crl_number"], held, "{list}");
    assert!(party(&list, HOSPITAL)["warning"].is_null(), "{list}");

    // Revoked: 127.0.0.1 is told so; the hospital still holds the old CRL.
    app.clock.advance(time::Duration::seconds(5));
    let (status, body) = app
        .api(
            "POST",
            &format!("/api/v1/certificates/{serial}/revoke"),
            Some(&admin),
            Some(&json!({"reason": "keyCompromise"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(ocsp_from(&app, "127.0.0.1", &d.id).await.starts_with("revoked"));
    assert!(!handshake_from(&app, "127.0.0.3", &d.id).await, "a revoked device got in");

    let (_, list) = app.api("GET", "/api/v1/relying-parties", Some(&admin), None).await;
    let warning = party(&list, HOSPITAL)["warning"].as_str().unwrap_or_else(|| panic!("no warning: {list}"));
    assert!(warning.contains("would still accept"), "{warning}");
    // The console page says so in Japanese, on the hospital's row only.
    let html = console_page(&app, &admin).await;
    assert!(html.contains("1 件のシステムが、最新の失効より古い CRL を使っています"), "{html}");
    let row = html.split("<tr").find(|r| r.contains(HOSPITAL)).expect("the hospital's row");
    assert!(row.contains("class=\"stale\"") && row.contains("の失効より古い"), "{row}");
    let row = html.split("<tr").find(|r| r.contains(">127.0.0.0/24<")).expect("127.0.0.0/24's row");
    assert!(row.contains("問題なし"), "{row}");
    assert!(party(&list, "127.0.0.0/24")["warning"].is_null(), "{list}");
    assert!(party(&list, "127.0.0.0/24")["last_ocsp_at"].is_string(), "{list}");

    let (_, used) = app.api("GET", &used_path, Some(&admin), None).await;
    let told = ocsp_of(&used, "127.0.0.0/24");
    assert_eq!(told["last_answer"], "revoked", "{used}");
    assert!(told["last_good_at"].as_str() < told["first_revoked_at"].as_str(), "{used}");
    assert_eq!(ocsp_of(&used, HOSPITAL)["last_answer"], "good", "{used}");
    assert_eq!(used["refused_handshakes"], 1, "{used}");
    assert!(used["crl_downloads"].as_array().is_some_and(Vec::is_empty), "{used}");

    // The hospital fetches the new CRL: it lists the device, the warning goes.
    let newer = crl_from(&app, "127.0.0.2").await;
    assert!(newer > held);
    let (_, used) = app.api("GET", &used_path, Some(&admin), None).await;
    assert_eq!(used["crl_downloads"][0]["relying_party"], HOSPITAL, "{used}");
    assert_eq!(used["crl_downloads"][0]["crl_number"], newer, "{used}");
    let (_, list) = app.api("GET", "/api/v1/relying-parties", Some(&admin), None).await;
    assert!(party(&list, HOSPITAL)["warning"].is_null(), "{list}");
    assert!(!console_page(&app, &admin).await.contains("role=\"alert\""));

    // Once the retention period has passed since the last question, the
    // record goes (the worker prunes what was last seen before now − 400 days).
    let cutoff = connect_pki_domain::Clock::now(&*app.clock) + time::Duration::days(1);
    let pruned = app.state().store.prune_sightings(cutoff).await.expect("prune");
    assert!(pruned >= 4, "{pruned} rows pruned");
    let (_, list) = app.api("GET", "/api/v1/relying-parties", Some(&admin), None).await;
    assert_eq!(list["relying_parties"], json!([]), "{list}");
}
both_backends!(relying_parties_are_recorded_and_warned_about);

/// A manager reads their own facility's certificates' use and nothing
/// else; the list of relying parties is 行政管理課's alone.
async fn only_those_who_may_read_it_do(backend: Backend) {
    let w = world(backend).await;
    let own = format!("/api/v1/certificates/{}/use", w.staff_a.id.serial());
    let (status, _) = w.app.api("GET", &own, Some(&w.manager_a.id), None).await;
    assert_eq!(status, 200);
    for who in [&w.manager_b.id, &w.staff_a.id] {
        let (status, body) = w.app.api("GET", &own, Some(who), None).await;
        assert_eq!(status, 403, "{body}");
    }
    for who in [&w.manager_a.id, &w.welfare, &w.staff_a.id] {
        let (status, body) = w.app.api("GET", "/api/v1/relying-parties", Some(who), None).await;
        assert_eq!(status, 403, "{body}");
    }
    let (status, _) = w.app.api("GET", "/api/v1/relying-parties", Some(&w.app.admin), None).await;
    assert_eq!(status, 200);
    for who in [&w.manager_a.id, &w.welfare] {
        let reply = w.app.try_mtls(Some(who), Req::new("GET", "/console/relying-parties")).await.expect("page");
        assert_eq!(reply.status, 403, "{}", reply.text());
    }
    let (status, body) = w.app.api("GET", "/api/v1/certificates/zz/use", Some(&w.app.admin), None).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = w.app.api("GET", "/api/v1/certificates/0a0b/use", Some(&w.app.admin), None).await;
    assert_eq!(status, 404, "{body}");
}
both_backends!(only_those_who_may_read_it_do);

/// Several instances flushing their own counts into one database at the
/// same moment, round after round, end with exactly the sums, earliest and
/// latest times of everything any of them counted.
async fn instances_flushing_at_once_add_up(backend: Backend) {
    use std::collections::BTreeMap;

    use connect_pki_responder::Sightings;
    use connect_pki_store::OcspAnswer;

    let db = connect_pki_store::testing::TestDb::new(backend).await;
    // Each instance has a store (a connection pool) of its own, as separate
    // processes do: their transactions really run at the same time.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(db.store().await.expect("store"));
    }
    let store = &stores[0];
    // Three addresses, two of them one relying party by name.
    let parties: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "10.0.0.9"].into_iter().map(ip).collect();
    let name = |a: IpAddr| if a == ip("10.0.0.9") { a.to_string() } else { "ケース記録".to_string() };
    // (party, serial) → (queries, first revoked, last good); serial → (handshakes, last ok).
    type Told = (i64, Option<i64>, Option<i64>);
    let mut want: BTreeMap<(String, u128), Told> = BTreeMap::new();
    let mut shakes: BTreeMap<u128, (i64, Option<i64>)> = BTreeMap::new();
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for round in 0..20 {
        let instances: Vec<Sightings> = (0..4).map(|_| Sightings::default()).collect();
        for s in &instances {
            // Enough rows that a batch takes several statements.
            for _ in 0..400 {
                let party = parties[next(3) as usize];
                let serial = 0x4000_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(next(250));
                let at = 1_800_000_000 + round * 100 + next(100) as i64;
                let t = time::OffsetDateTime::from_unix_timestamp(at).expect("time");
                let revoked = next(3) == 0;
                let answer = if revoked { OcspAnswer::Revoked } else { OcspAnswer::Good };
                s.ocsp(party, 1, serial, answer, t);
                let w = want.entry((name(party), serial)).or_default();
                w.0 += 1;
                if revoked {
                    w.1 = Some(w.1.map_or(at, |x: i64| x.min(at)));
                } else {
                    w.2 = w.2.max(Some(at));
                }
                s.handshake(serial, true, Some(ip("127.0.0.1")), t);
                let h = shakes.entry(serial).or_default();
                h.0 += 1;
                h.1 = h.1.max(Some(at));
            }
        }
        // Polled together: each flush waits on the database while the others run.
        let i = &instances;
        let flushed = tokio::join!(
            i[0].flush(&stores[0], &name),
            i[1].flush(&stores[1], &name),
            i[2].flush(&stores[2], &name),
            i[3].flush(&stores[3], &name)
        );
        for f in [flushed.0, flushed.1, flushed.2, flushed.3] {
            f.expect("a flush failed");
        }
    }
    for (serial, (count, last_ok)) in &shakes {
        let hex = format!("{serial:032x}");
        let got = store.certificate_sightings(&hex, None).await.expect("read");
        let h = got.handshakes.expect("handshakes");
        assert_eq!((h.ok, h.last_ok_at), (*count, *last_ok), "{hex}");
        for o in &got.ocsp {
            let w = want[&(o.party.clone(), *serial)];
            assert_eq!((o.queries, o.first_revoked_at, o.last_good_at), w, "{} {hex}", o.party);
        }
        assert_eq!(got.ocsp.len(), want.keys().filter(|(_, s)| s == serial).count(), "{hex}");
    }
}
both_backends!(instances_flushing_at_once_add_up);

/// `--relying-party-recording false`: answers as ever, records nothing.
async fn recording_can_be_turned_off(backend: Backend) {
    let off = AppOptions::with(|c| c.ra.relying.enabled = false);
    let app = spawn_app_with(backend, off).await;
    let d = app.device("unrecorded").await;
    assert_eq!(ocsp_from(&app, "127.0.0.2", &d.id).await, "good");
    crl_from(&app, "127.0.0.2").await;
    assert!(handshake_from(&app, "127.0.0.3", &d.id).await);
    let (_, used) =
        app.api("GET", &format!("/api/v1/certificates/{}/use", d.id.serial()), Some(&app.admin), None).await;
    assert_eq!((used["ocsp"].clone(), used["handshakes"].clone()), (json!([]), json!(0)), "{used}");
    let (_, list) = app.api("GET", "/api/v1/relying-parties", Some(&app.admin), None).await;
    assert_eq!(list["relying_parties"], json!([]), "{list}");
}
both_backends!(recording_can_be_turned_off);

/// A flush that cannot reach the database loses nothing and, once it can,
/// writes each count once: the failed rows first, the newer counts after.
async fn a_failed_flush_is_written_once_later(backend: Backend) {
    use connect_pki_responder::Sightings;
    use connect_pki_store::OcspAnswer;

    let db = connect_pki_store::testing::TestDb::new(backend).await;
    let (down, up) = (db.store().await.expect("store"), db.store().await.expect("store"));
    let name = |a: IpAddr| a.to_string();
    let s = Sightings::default();
    let at = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    // More rows than one transaction takes.
    for serial in 0..1500u128 {
        s.ocsp(ip("10.0.0.1"), 1, (1 << 126) + serial, OcspAnswer::Good, at);
    }
    down.close().await;
    assert!(s.flush(&down, &name).await.is_err(), "a closed pool accepted the write");
    // Counted while the database was away.
    s.ocsp(ip("10.0.0.1"), 1, 1 << 126, OcspAnswer::Revoked, at + time::Duration::seconds(9));
    assert_eq!(s.flush(&up, &name).await.expect("written"), 1500, "the queued rows go first, alone");
    assert_eq!(s.flush(&up, &name).await.expect("written"), 1, "then what came after");
    let first = up.certificate_sightings(&format!("{:032x}", 1u128 << 126), None).await.expect("read");
    let told = &first.ocsp[0];
    assert_eq!((told.queries, told.last_answer), (2, OcspAnswer::Revoked), "{told:?}");
    let other = up.certificate_sightings(&format!("{:032x}", (1u128 << 126) + 1499), None).await.expect("read");
    assert_eq!(other.ocsp[0].queries, 1, "{:?}", other.ocsp);
}
both_backends!(a_failed_flush_is_written_once_later);

/// One request naming several certificates counts only its first (issue 24):
/// serials are public on the CRL, and a request of 64 CertIDs must not add
/// 64 rows to the record of who relies on us.
async fn a_request_about_many_certificates_counts_only_the_first(backend: Backend) {
    use der::{Decode, Encode};
    let app = spawn_app_with(backend, named()).await;
    let (first, second) = (app.device("rp-first").await, app.device("rp-second").await);
    let one = |who: &Identity| connect_pki_e2e::ocsp::request(&app.ca.issuing_der, &who.cert_der);
    let mut request = x509_ocsp::OcspRequest::from_der(&one(&first.id)).expect("request");
    let other = x509_ocsp::OcspRequest::from_der(&one(&second.id)).expect("request");
    request.tbs_request.request_list.extend(other.tbs_request.request_list);
    let req = Req::new("POST", "/ocsp").body("application/ocsp-request", request.to_der().expect("DER"));
    let reply = http_from(app.public, ip("127.0.0.9"), req).await.expect("OCSP");
    assert_eq!(reply.status, 200);
    let asked = |who: &Identity| {
        let path = format!("/api/v1/certificates/{}/use", who.serial());
        let app = &app;
        async move {
            let (status, used) = app.api("GET", &path, Some(&app.admin), None).await;
            assert_eq!(status, 200, "{used}");
            used["ocsp"].as_array().expect("ocsp").iter().any(|p| p["relying_party"] == "127.0.0.0/24")
        }
    };
    assert!(asked(&first.id).await, "the first CertID was not counted");
    assert!(!asked(&second.id).await, "the second CertID of the request was counted too");
}
both_backends!(a_request_about_many_certificates_counts_only_the_first);

/// What strangers can make the responder sign and the record keep is
/// bounded (issue 24): a client no name covers gets `tryLater` past its
/// share of OCSP a minute while a named relying party never does; 40
/// addresses of one /24 are one relying party; and the rows of unnamed
/// networks are kept to their cap, the least recently seen going first.
async fn strangers_fill_neither_the_responder_nor_the_record(backend: Backend) {
    let pairs = [(HOSPITAL.to_string(), vec!["127.0.0.2".to_string()])];
    let app = spawn_app_with(
        backend,
        AppOptions::with(|c| {
            c.ocsp_rate_limit_per_minute = 5;
            c.ra.relying = RecordSettings {
                names: Names::parse(pairs.iter().map(|(n, v)| (n, v))).expect("names"),
                flush_every: std::time::Duration::from_secs(3600),
                unnamed_rows: 4,
                ..RecordSettings::default()
            }
        }),
    )
    .await;
    let d = app.device("rp-stranger").await;
    for i in 0..12 {
        assert_eq!(ocsp_from(&app, "127.0.0.2", &d.id).await, "good", "the named party's question {i}");
    }
    for i in 0..5 {
        assert_eq!(ocsp_from(&app, "127.0.0.9", &d.id).await, "good", "a stranger's question {i}");
    }
    let request = connect_pki_e2e::ocsp::request(&app.ca.issuing_der, &d.id.cert_der);
    let req = Req::new("POST", "/ocsp").body("application/ocsp-request", request);
    let reply = http_from(app.public, ip("127.0.0.9"), req).await.expect("OCSP");
    let said = <x509_ocsp::OcspResponse as der::Decode>::from_der(&reply.body).expect("an OCSP response");
    assert_eq!(said.response_status, x509_ocsp::OcspResponseStatus::TryLater, "the stranger's sixth question");

    for i in 1..=40 {
        assert_eq!(ocsp_from(&app, &format!("127.0.1.{i}"), &d.id).await, "good");
    }
    let (status, list) = app.api("GET", "/api/v1/relying-parties", Some(&app.admin), None).await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> =
        list["relying_parties"].as_array().expect("list").iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(
        names.contains(&"127.0.1.0/24") && !names.iter().any(|n| n.starts_with("127.0.1.") && *n != "127.0.1.0/24"),
        "{names:?}"
    );

    // Six more networks; four rows of unnamed ones are kept, the newest.
    for net in 10..16 {
        assert_eq!(ocsp_from(&app, &format!("127.0.{net}.1"), &d.id).await, "good");
        app.clock.advance(time::Duration::seconds(10));
        connect_pki_ra::sightings::flush(&app.state().ra).await.expect("flush");
    }
    let gone = connect_pki_ra::sightings::trim(&app.state().ra).await.expect("trim");
    assert!(gone >= 4, "{gone} rows trimmed");
    let (_, used) =
        app.api("GET", &format!("/api/v1/certificates/{}/use", d.id.serial()), Some(&app.admin), None).await;
    let mut parties: Vec<&str> =
        used["ocsp"].as_array().expect("ocsp").iter().filter_map(|p| p["relying_party"].as_str()).collect();
    parties.sort_unstable();
    assert_eq!(parties, ["127.0.12.0/24", "127.0.13.0/24", "127.0.14.0/24", "127.0.15.0/24", HOSPITAL], "{used}");
}
both_backends!(strangers_fill_neither_the_responder_nor_the_record);

/// Presents `cert` with a key that is not its own: what anyone can do with
/// a certificate copied from a capture or guessed from a CRL's serials.
#[derive(Debug)]
struct NotItsKey(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for NotItsKey {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn with_another_key(app: &TestApp, cert_der: &[u8]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let stranger = rcgen::KeyPair::generate().expect("a key");
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(stranger.serialize_der().into());
    let signer = provider.key_provider.load_private_key(key).expect("a signing key");
    let chain = vec![rustls_pki_types::CertificateDer::from(cert_der.to_vec())];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(app.ca.root_der.clone())).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(NotItsKey(Arc::new(rustls::sign::CertifiedKey::new(chain, signer)))));
    Arc::new(config)
}

/// A revoked certificate presented with a key that is not its own is
/// refused without being counted: the incident record's refused handshakes
/// are the key holder's, proved in the handshake, and nobody else can add
/// to them (issue 24).
async fn a_refused_handshake_counts_only_when_the_key_was_proved(backend: Backend) {
    let app = spawn_app_with(backend, named()).await;
    let d = app.device("rp-stolen").await;
    let path = format!("/api/v1/certificates/{}/revoke", d.id.serial());
    let (status, body) = app.api("POST", &path, Some(&app.admin), Some(&json!({"reason": "keyCompromise"}))).await;
    assert_eq!(status, 200, "{body}");
    let refused = || async {
        let path = format!("/api/v1/certificates/{}/use", d.id.serial());
        let (status, used) = app.api("GET", &path, Some(&app.admin), None).await;
        assert_eq!(status, 200, "{used}");
        used["refused_handshakes"].as_i64().expect("refused_handshakes")
    };
    let before = refused().await;
    for i in 0..3 {
        let tried = https_from(
            app.api,
            ip("127.0.0.4"),
            with_another_key(&app, &d.id.cert_der),
            Req::new("GET", "/api/v1/whoami"),
        )
        .await;
        assert!(tried.is_err() || tried.as_ref().is_ok_and(|r| r.status != 200), "attempt {i} got in");
    }
    assert_eq!(refused().await, before, "handshakes without the key were counted as the device's");
    assert!(!handshake_from(&app, "127.0.0.4", &d.id).await, "the revoked device got in");
    assert_eq!(refused().await, before + 1, "the key holder's refused handshake was not counted");
    // And a valid certificate with a key not its own does not get in at all.
    let other = app.device("rp-valid").await;
    let tried = https_from(
        app.api,
        ip("127.0.0.4"),
        with_another_key(&app, &other.id.cert_der),
        Req::new("GET", "/api/v1/whoami"),
    )
    .await;
    assert!(tried.is_err(), "a certificate with another key got in: {:?}", tried.map(|r| r.status));
}
both_backends!(a_refused_handshake_counts_only_when_the_key_was_proved);
