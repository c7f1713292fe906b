//! A suspension of a facility with more certificates than one statement
//! binds: every valid one held and recorded, the one already held only kept,
//! and the resume releasing exactly the ones it held.

use connect_pki_domain::certificate::Change;
use connect_pki_domain::{CertStatus, FacilityKind, FacilityStatus, Serial, UserStatus};
use connect_pki_store::testing::TestDb;
use connect_pki_store::{NewCertificate, NewFacility, StoreError, both_backends};

use crate::{bootstrapped, count, now, staff};

/// Devices in the facility: more than the store binds in one statement.
const DEVICES: u16 = 450;

fn cert(n: u16) -> NewCertificate {
    let [a, b] = n.to_be_bytes();
    NewCertificate {
        ca_generation: 1,
        serial: Serial::from_bytes(&[0x41, a, b, 1]).expect("serial"),
        der: vec![0x30, a, b],
        not_before: now(),
        not_after: now() + time::Duration::days(365),
    }
}

async fn a_large_facility_is_held_and_released_whole(db: TestDb) {
    let store = bootstrapped(&db).await;
    let new = NewFacility {
        name: "大きな施設".into(),
        kind: FacilityKind::External,
        address: "千歳市".into(),
        department: Some("福祉課".into()),
    };
    let facility = store.create_facility(&new, "user:1", now()).await.expect("facility");
    let user =
        store.create_user(facility.id, &staff("ookii"), UserStatus::Active, "user:1", now()).await.expect("user");
    let mut serials = Vec::new();
    for n in 0..DEVICES {
        let (_, c) = store
            .add_device::<StoreError>(user.id, &format!("端末{n}"), "user:1", now(), |_| Ok(cert(n)))
            .await
            .expect("device");
        serials.push(c.serial);
    }
    let held_before = &serials[0];
    store.change_certificate(held_before, Change::Hold, "user:1", now()).await.expect("direct hold");

    let suspended = store.change_facility_status(facility.id, FacilityStatus::Suspended, "user:1", now()).await;
    let suspended = suspended.expect("suspend");
    assert_eq!(suspended.held, serials[1..].to_vec());
    assert_eq!(count(&db.url, "suspension_holds").await, i64::from(DEVICES));
    for s in &serials {
        let c = store.certificate(s).await.expect("read").expect("stored");
        assert_eq!(c.status, CertStatus::OnHold, "{s}");
    }

    let resumed = store.change_facility_status(facility.id, FacilityStatus::Approved, "user:1", now()).await;
    assert_eq!(resumed.expect("resume").released, serials[1..].to_vec());
    assert_eq!(count(&db.url, "suspension_holds").await, 0);
    let c = store.certificate(held_before).await.expect("read").expect("stored");
    assert_eq!(c.status, CertStatus::OnHold, "a direct hold stays for whoever placed it");
    assert!(store.consistency_offenders().await.expect("check").is_empty());
    assert_eq!(store.verify_audit().await.expect("verify").first_break, None);
}
both_backends!(
    a_large_facility_is_held_and_released_whole,
    crate::suspension::a_large_facility_is_held_and_released_whole
);
