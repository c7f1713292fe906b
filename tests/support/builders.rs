//! Builders for the in-process tests: a facility (application submitted and
//! approved), its manager, staff and devices, each enrolled through the real
//! API and returned with the certificate and key the mTLS client presents;
//! and users with devices made straight through the store, for tests that
//! need hundreds of them.

use base64::Engine;
use connect_pki_ca::{DeviceSubject, KeyKind};
use connect_pki_domain::{Clock, FacilityId, Role, UserId, UserStatus};
use connect_pki_store::{NewUser, StoreError};
use serde_json::{Value, json};

use crate::app::TestApp;
use crate::client::Identity;
use crate::fixtures::{PASSWORD, application};

/// An enrolled device: who it acts as, and the ids the API gave it.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub id: Identity,
    pub serial: String,
    pub user_id: i64,
    pub device_id: i64,
}

/// An approved facility whose manager has not enrolled yet.
#[derive(Debug, Clone)]
pub struct Facility {
    pub id: i64,
    pub manager_code: String,
}

/// A new P-256 key and a PKCS#10 request for it with subject CN=`cn`:
/// (PKCS#8 key, CSR PEM, CSR DER).
pub fn csr(cn: &str) -> (Vec<u8>, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let req = params.serialize_request(&key).expect("CSR");
    (key.serialize_der(), req.pem().expect("PEM"), req.der().to_vec())
}

impl TestApp {
    /// Registers a user in `facility` as `by`; returns the user id.
    pub async fn register(&self, by: &Identity, facility: i64, login: &str, role: &str) -> i64 {
        let body = json!({"display_name": format!("{login} さん"), "login_id": login, "email": format!("{login}@example.test"), "role": role});
        let (status, out) =
            self.api("POST", &format!("/api/v1/facilities/{facility}/users"), Some(by), Some(&body)).await;
        assert_eq!(status, 201, "register {login}: {out}");
        out["id"].as_i64().expect("id")
    }

    /// A new enrollment code for `user`, made by `by`.
    pub async fn code_for(&self, by: &Identity, user: i64) -> String {
        let (status, out) = self.api("POST", &format!("/api/v1/users/{user}/enrollment-codes"), Some(by), None).await;
        assert_eq!(status, 201, "code: {out}");
        out["code"].as_str().expect("code").to_string()
    }

    /// The id of the newest enrollment code, from the audit log: codes are
    /// handed out as their secret alone, and `{id}-{code}` is the form codes
    /// took before (still accepted).
    pub async fn newest_code_id(&self) -> i64 {
        let (status, log) = self.api("GET", "/api/v1/audit?limit=1000", Some(&self.admin), None).await;
        assert_eq!(status, 200, "{log}");
        log.as_array()
            .expect("audit")
            .iter()
            .filter(|r| r["action"] == "enrollment_code.create")
            .filter_map(|r| r["target"].as_str()?.strip_prefix("enrollment_code:")?.parse().ok())
            .max()
            .expect("an enrollment code in the audit log")
    }

    /// Redeems `code` for a server-generated key and opens the PKCS#12.
    pub async fn enroll_generated(&self, code: &str, password: Option<&str>, label: &str) -> Identity {
        let mut body = json!({"code": code, "generate_key": true, "device_label": label});
        if let Some(p) = password {
            body["password"] = p.into();
        }
        let (status, out) = self.public_api("POST", "/api/v1/enroll", Some(&body)).await;
        assert_eq!(status, 201, "enroll {label}: {out}");
        let p12 =
            base64::engine::general_purpose::STANDARD.decode(out["pkcs12"].as_str().expect("pkcs12")).expect("base64");
        let pass = out["pkcs12_password"].as_str().expect("password");
        let store = p12_keystore::KeyStore::from_pkcs12(&p12, pass, Default::default()).expect("the PKCS#12 opens");
        let (_, chain) = store.private_key_chain().expect("a key with its chain");
        let leaf = chain.certs().first().expect("the device certificate");
        Identity { cert_der: leaf.as_der().to_vec(), key_der: chain.key().as_der().to_vec() }
    }

    /// Redeems `code` with a CSR (subject CN=`cn`) for a key made here.
    pub async fn enroll_csr(&self, code: &str, password: Option<&str>, label: &str, cn: &str) -> Identity {
        let (key_der, csr, _) = csr(cn);
        let mut body = json!({"code": code, "csr": csr, "device_label": label});
        if let Some(p) = password {
            body["password"] = p.into();
        }
        let (status, out) = self.public_api("POST", "/api/v1/enroll", Some(&body)).await;
        assert_eq!(status, 201, "enroll {label}: {out}");
        Identity { cert_der: pem_der(out["certificate"].as_str().expect("certificate")), key_der }
    }

    /// The ids `whoami` gives an identity of `user_id`.
    pub async fn enrolled(&self, id: Identity, user_id: i64) -> Enrolled {
        let me = self.whoami(&id).await;
        Enrolled {
            serial: me["serial"].as_str().expect("serial").to_string(),
            device_id: me["device_id"].as_i64().expect("device"),
            user_id,
            id,
        }
    }

    /// A facility applied for on the public API and approved by `approver`.
    pub async fn facility(&self, approver: &Identity, name: &str, manager_login: &str) -> Facility {
        self.approve(approver, &application(name, manager_login)).await
    }

    /// Submits `app` (an application body) and approves it as `approver`.
    pub async fn approve(&self, approver: &Identity, app: &Value) -> Facility {
        let (status, created) = self.public_api("POST", "/api/v1/applications", Some(app)).await;
        assert_eq!(status, 201, "{created}");
        let path = format!("/api/v1/applications/{}/approve", created["id"]);
        let (status, approval) = self.api("POST", &path, Some(approver), None).await;
        assert_eq!(status, 200, "{approval}");
        Facility {
            id: approval["facility_id"].as_i64().expect("facility"),
            manager_code: approval["enrollment_code"]["code"].as_str().expect("code").to_string(),
        }
    }

    /// The facility's manager, enrolled with a server-generated key (PKCS#12).
    pub async fn manager(&self, f: &Facility, label: &str) -> Enrolled {
        let id = self.enroll_generated(&f.manager_code, Some(PASSWORD), label).await;
        let me = self.whoami(&id).await;
        self.enrolled(id, me["user_id"].as_i64().expect("user")).await
    }

    /// A staff member of `facility`, registered by `by`, with one device
    /// enrolled from a CSR.
    pub async fn staff(&self, by: &Identity, facility: i64, login: &str) -> Enrolled {
        let user = self.register(by, facility, login, "staff").await;
        let code = self.code_for(by, user).await;
        let id = self.enroll_csr(&code, Some(PASSWORD), login, login).await;
        self.enrolled(id, user).await
    }

    /// A staff member of the city's facility (registered by the bootstrap
    /// administrator) with one device enrolled from a CSR.
    pub async fn device(&self, login: &str) -> Enrolled {
        let body = json!({"display_name": login, "login_id": login, "email": format!("{login}@example.test")});
        let (status, user) = self.api("POST", "/api/v1/facilities/1/users", Some(&self.admin), Some(&body)).await;
        assert_eq!(status, 201, "{user}");
        let user_id = user["id"].as_i64().expect("id");
        let code = self.code_for(&self.admin, user_id).await;
        let id = self.enroll_csr(&code, Some(PASSWORD), &format!("{login}-1"), login).await;
        self.enrolled(id, user_id).await
    }
}

/// Made the cheap way: for tests that need a fresh target per call, by the
/// hundred. The store operations an enrollment ends in — the user, the
/// device, its certificate signed by the service's CA, their audit rows, the
/// index following — without enrollment codes, HTTP round trips or a
/// password hash (see [`TestApp::give_passwords`]).
impl TestApp {
    /// An active user of `role` in `facility` with `devices` devices, each
    /// with one valid certificate.
    pub async fn quick_user(&self, facility: i64, login: &str, role: Role, devices: usize) -> Vec<Enrolled> {
        let store = &self.state().store;
        let new = NewUser {
            login_id: login.into(),
            display_name: format!("{login} さん"),
            email: format!("{login}@example.test"),
            role,
        };
        let now = self.clock.now();
        let user = store.create_user(FacilityId(facility), &new, UserStatus::Active, "test:builder", now).await;
        let user = user.expect("create user").id;
        let mut out = Vec::with_capacity(devices);
        for n in 1..=devices {
            out.push(self.quick_device(user, &format!("{login}-{n}")).await);
        }
        self.state().revocations.sync().await.expect("the index follows the feed");
        out
    }

    async fn quick_device(&self, user: UserId, label: &str) -> Enrolled {
        let now = self.clock.now();
        let mut key = None;
        let (device, cert) = self
            .state()
            .store
            .add_device::<StoreError>(user, label, "test:builder", now, |d| {
                let subject = DeviceSubject {
                    facility: d.facility,
                    user: d.user,
                    device: d.device,
                    login_id: d.login_id.clone(),
                };
                let (c, k) = self
                    .ca
                    .issuing
                    .issue_device_with_new_key(KeyKind::P256, &subject, now)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                key = Some(k);
                Ok(connect_pki_ra::stored(c))
            })
            .await
            .expect("add device");
        let key = key.expect("the certificate was signed");
        Enrolled {
            id: Identity { cert_der: cert.der, key_der: key.pkcs8_der().to_vec() },
            serial: cert.serial.to_hex(),
            user_id: user.0,
            device_id: device.device.0,
        }
    }

    /// Gives every user who has no password yet [`PASSWORD`], in one
    /// statement (the store sets passwords only when a code is redeemed).
    /// Hashed with argon2's smallest parameters: the service verifies with
    /// the parameters the stored hash names, and the tests that make users
    /// by the hundred check who may do what, not what a guess costs.
    pub async fn give_passwords(&self) {
        use argon2::password_hash::PasswordHasher;
        let cheap = argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None).expect("argon2 parameters");
        let hash = argon2::Argon2::from(cheap)
            .hash_password_with_salt(PASSWORD.as_bytes(), b"connect-pki-tests")
            .expect("argon2")
            .to_string();
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.db.url).await.expect("direct connection");
        sqlx::query("update users set password_hash = $1 where password_hash is null")
            .bind(hash)
            .execute(&pool)
            .await
            .expect("set passwords");
        pool.close().await;
    }
}

/// The DER of the first PEM block.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let (_, doc) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    doc.contents
}

/// `der` in base64, as EST sends a PKCS#10 request and answers a message.
pub fn b64(der: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
}

/// The first certificate (DER) of an EST answer — a base64 certs-only
/// PKCS#7 — as `openssl pkcs7 -print_certs` reads it (not our own parser).
pub fn est_certificate(b64_text: &str) -> Vec<u8> {
    let clean: String = b64_text.split_whitespace().collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, clean).expect("base64");
    let o = std::process::Command::new("openssl")
        .args(["pkcs7", "-inform", "DER", "-print_certs"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(&der)?;
            c.wait_with_output()
        })
        .expect("openssl pkcs7");
    pem_der(&String::from_utf8_lossy(&o.stdout))
}
