//! Repository tests. Every test runs on SQLite and on PostgreSQL.

mod background;
mod crl;
mod expiry;
mod listings;
mod races;
mod suspension;

use connect_pki_domain::{Role, Serial, UserId, UserStatus};
use connect_pki_store::testing::TestDb;
use connect_pki_store::{Backend, BootstrapInput, NewCertificate, NewUser, Store, StoreError, both_backends};
use time::OffsetDateTime;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid")
}

fn serial(n: u8) -> Serial {
    Serial::from_bytes(&[0x40, n, 1, 2, 3, 4, 5, 6]).expect("serial")
}

fn fake_cert(n: u8) -> NewCertificate {
    NewCertificate {
        ca_generation: 1,
        serial: serial(n),
        der: vec![0x30, n],
        not_before: now(),
        not_after: now() + time::Duration::days(365),
    }
}

fn input() -> BootstrapInput {
    connect_pki_store::testing::bootstrap_input("admin")
}

fn staff(login: &str) -> NewUser {
    NewUser {
        login_id: login.into(),
        display_name: "千歳 花子".into(),
        email: format!("{login}@example.test"),
        role: Role::Staff,
    }
}

async fn count(store_url: &str, table: &str) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(store_url).await.expect("connect");
    sqlx::query(&format!("select count(*) as n from {table}"))
        .fetch_one(&mut conn)
        .await
        .expect("count")
        .try_get("n")
        .expect("n")
}

async fn bootstrapped(db: &TestDb) -> Store {
    let store = db.store().await.expect("connect");
    store.bootstrap::<StoreError>(&input(), now(), |_| Ok(fake_cert(1))).await.expect("bootstrap");
    store
}

async fn bootstrap_creates_the_admin_identity_once(db: TestDb) {
    let store = db.store().await.expect("connect");
    let (facility, user, device, cert) =
        store.bootstrap::<StoreError>(&input(), now(), |_| Ok(fake_cert(1))).await.expect("bootstrap");
    assert_eq!(user.role, Role::AdminDivision);
    assert_eq!(device.user, user.id);
    assert_eq!(device.facility, facility.id);

    let id = store.identity_by_serial(&cert.serial).await.expect("query").expect("found");
    assert_eq!(id.user.login_id.as_deref(), Some("admin"));
    assert_eq!(id.user.role, Role::AdminDivision);
    assert_eq!(id.facility.name, "千歳市 総務部行政管理課");
    assert_eq!(id.device, device.device);
    assert_eq!(id.certificate.der, vec![0x30, 1]);
    assert_eq!(id.certificate.not_after, now() + time::Duration::days(365));

    let again = store.bootstrap::<StoreError>(&input(), now(), |_| Ok(fake_cert(2))).await;
    assert!(matches!(again, Err(StoreError::AlreadyInitialised)), "{again:?}");
    assert_eq!(count(&db.url, "users").await, 1);
}
both_backends!(bootstrap_creates_the_admin_identity_once, crate::bootstrap_creates_the_admin_identity_once);

async fn unknown_serial_has_no_identity(db: TestDb) {
    let store = bootstrapped(&db).await;
    assert_eq!(store.identity_by_serial(&serial(99)).await.expect("query"), None);
    assert_eq!(store.certificate(&serial(99)).await.expect("query"), None);
}
both_backends!(unknown_serial_has_no_identity, crate::unknown_serial_has_no_identity);

async fn duplicate_login_id_is_a_conflict_and_creates_nothing(db: TestDb) {
    let store = bootstrapped(&db).await;
    let facility = store.facility(connect_pki_domain::FacilityId(1)).await.expect("q").expect("city facility");
    store.create_user(facility.id, &staff("hanako"), UserStatus::Invited, "user:1", now()).await.expect("first");
    let (users, audit) = (count(&db.url, "users").await, count(&db.url, "audit_log").await);
    let err = store.create_user(facility.id, &staff("hanako"), UserStatus::Invited, "user:1", now()).await;
    match err {
        Err(StoreError::Conflict(what)) => assert!(what.to_string().contains("hanako"), "{what}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(count(&db.url, "users").await, users);
    assert_eq!(count(&db.url, "audit_log").await, audit);
}
both_backends!(
    duplicate_login_id_is_a_conflict_and_creates_nothing,
    crate::duplicate_login_id_is_a_conflict_and_creates_nothing
);

async fn failed_signing_leaves_no_device_behind(db: TestDb) {
    let store = bootstrapped(&db).await;
    let devices = count(&db.url, "devices").await;
    let audit = count(&db.url, "audit_log").await;
    let res = store
        .add_device::<StoreError>(UserId(1), "tablet", "user:1", now(), |_| {
            Err(StoreError::Corrupt("signer down".into()))
        })
        .await;
    assert!(res.is_err());
    assert_eq!(count(&db.url, "devices").await, devices);
    assert_eq!(count(&db.url, "audit_log").await, audit);

    let (device, cert) =
        store.add_device::<StoreError>(UserId(1), "tablet", "user:1", now(), |_| Ok(fake_cert(3))).await.expect("ok");
    let id = store.identity_by_serial(&cert.serial).await.expect("q").expect("found");
    assert_eq!(id.device, device.device);
    assert_eq!(count(&db.url, "devices").await, devices + 1);
}
both_backends!(failed_signing_leaves_no_device_behind, crate::failed_signing_leaves_no_device_behind);

async fn duplicate_serial_is_refused(db: TestDb) {
    let store = bootstrapped(&db).await;
    let res = store.add_device::<StoreError>(UserId(1), "pc", "user:1", now(), |_| Ok(fake_cert(1))).await;
    assert!(matches!(res, Err(StoreError::Conflict(_))), "{res:?}");
}
both_backends!(duplicate_serial_is_refused, crate::duplicate_serial_is_refused);

async fn audit_chain_verifies_and_detects_an_edit_and_a_gap(db: TestDb) {
    use sqlx::Connection;
    let store = bootstrapped(&db).await;
    for i in 0..5 {
        store
            .create_user(
                connect_pki_domain::FacilityId(1),
                &staff(&format!("s{i}")),
                UserStatus::Invited,
                "user:1",
                now(),
            )
            .await
            .expect("user");
    }
    let ok = store.verify_audit().await.expect("verify");
    assert_eq!(ok.first_break, None);
    assert_eq!(ok.records, 4 + 5, "facility, user, device, certificate, then five users");

    let mut conn = sqlx::AnyConnection::connect(&db.url).await.expect("connect");
    // The table refuses edits outright…
    let refused = sqlx::query("update audit_log set actor = 'mallory' where id = 3").execute(&mut conn).await;
    assert!(refused.is_err(), "append-only trigger let an update through");
    // …so someone with full rights must first remove the guard.
    let drop_guard = match db.backend() {
        Backend::Sqlite => "drop trigger audit_log_no_update",
        Backend::Postgres => "drop trigger audit_log_no_change on audit_log",
    };
    sqlx::query(drop_guard).execute(&mut conn).await.expect("drop trigger");
    sqlx::query("update audit_log set actor = 'mallory' where id = 3").execute(&mut conn).await.expect("edit");
    let broken = store.verify_audit().await.expect("verify");
    assert_eq!(broken.first_break.as_ref().map(|b| b.0), Some(3), "{broken:?}");
    assert_eq!(broken.records, 2);

    sqlx::query("update audit_log set actor = 'system:init' where id = 3").execute(&mut conn).await.expect("restore");
    assert_eq!(store.verify_audit().await.expect("verify").first_break, None);
    if db.backend() == Backend::Sqlite {
        sqlx::query("drop trigger audit_log_no_delete").execute(&mut conn).await.expect("drop trigger");
    }
    sqlx::query("delete from audit_log where id = 6").execute(&mut conn).await.expect("delete");
    let gap = store.verify_audit().await.expect("verify");
    assert_eq!(gap.first_break, Some((7, "record 6 is missing".into())));
}
both_backends!(
    audit_chain_verifies_and_detects_an_edit_and_a_gap,
    crate::audit_chain_verifies_and_detects_an_edit_and_a_gap
);

async fn concurrent_writers_keep_one_unbroken_chain(db: TestDb) {
    let store = bootstrapped(&db).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_user(
                    connect_pki_domain::FacilityId(1),
                    &staff(&format!("c{i}")),
                    UserStatus::Invited,
                    "user:1",
                    now(),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("user created");
    }
    let v = store.verify_audit().await.expect("verify");
    assert_eq!(v.first_break, None);
    assert_eq!(v.records, 4 + 24);
}
both_backends!(concurrent_writers_keep_one_unbroken_chain, crate::concurrent_writers_keep_one_unbroken_chain);

async fn reconnecting_keeps_data_and_migrations_are_idempotent(db: TestDb) {
    let store = bootstrapped(&db).await;
    store.close().await;
    let again = db.store().await.expect("reconnect");
    let id = again.identity_by_serial(&serial(1)).await.expect("q").expect("still there");
    assert_eq!(id.user.status, UserStatus::Active);
}
both_backends!(
    reconnecting_keeps_data_and_migrations_are_idempotent,
    crate::reconnecting_keeps_data_and_migrations_are_idempotent
);

#[test]
fn backend_is_chosen_by_url_and_passwords_are_redacted() {
    assert_eq!(Backend::of_url("postgres://u:p@h/db").ok(), Some(Backend::Postgres));
    assert_eq!(Backend::of_url("sqlite:///tmp/x.db").ok(), Some(Backend::Sqlite));
    let err = Backend::of_url("mysql://root:hunter2@h/db").expect_err("refused").to_string();
    assert!(err.contains("sqlite: or postgres://") && !err.contains("hunter2"), "{err}");
    assert_eq!(connect_pki_store::redact("postgres://u:hunter2@h/db"), "postgres://u:***@h/db");
}
