//! The reads behind the city's pages: the audit log by kind of action,
//! newest first and paged backwards; the counts per facility; one user's
//! devices.

use connect_pki_domain::AuditAction;
use connect_pki_domain::certificate::Change;
use connect_pki_domain::{FacilityId, FacilityKind, UserStatus};
use connect_pki_store::testing::TestDb;
use connect_pki_store::{AuditFilter, NewFacility, StoreError, both_backends};

use crate::{bootstrapped, fake_cert, now, staff};

async fn the_audit_log_filters_by_action_and_pages_newest_first(db: TestDb) {
    let store = bootstrapped(&db).await;
    for login in ["a.one", "a.two", "a.three"] {
        store.create_user(FacilityId(1), &staff(login), UserStatus::Active, "user:1", now()).await.expect("user");
    }
    let page = |f: AuditFilter| {
        let store = store.clone();
        async move {
            store.audit_page(&AuditFilter { limit: if f.limit == 0 { 100 } else { f.limit }, ..f }).await.expect("page")
        }
    };
    let users = page(AuditFilter { action: Some("user".into()), ..AuditFilter::default() }).await;
    assert_eq!(users.len(), 4, "the family: the bootstrap admin and three more");
    assert!(users.iter().all(|r| r.entry.action == AuditAction::UserCreate));
    let exact = page(AuditFilter { action: Some("user.create".into()), ..AuditFilter::default() }).await;
    assert_eq!(exact, users);
    // LIKE's wildcards in the filter match only themselves.
    for wild in ["us_r", "%", "user.%", "u"] {
        assert!(page(AuditFilter { action: Some(wild.into()), ..AuditFilter::default() }).await.is_empty(), "{wild}");
    }

    let newest = page(AuditFilter { newest_first: true, limit: 2, ..AuditFilter::default() }).await;
    let all = page(AuditFilter::default()).await;
    assert_eq!(newest.iter().map(|r| r.id).collect::<Vec<_>>(), [all[all.len() - 1].id, all[all.len() - 2].id]);
    let older = page(AuditFilter { newest_first: true, before_id: newest[1].id, ..AuditFilter::default() }).await;
    assert_eq!(older.len(), all.len() - 2);
    assert!(older.iter().all(|r| r.id < newest[1].id));
    assert!(older.windows(2).all(|w| w[0].id > w[1].id), "newest first");
}
both_backends!(
    the_audit_log_filters_by_action_and_pages_newest_first,
    crate::listings::the_audit_log_filters_by_action_and_pages_newest_first
);

async fn facilities_are_counted_and_devices_listed_per_user(db: TestDb) {
    let store = bootstrapped(&db).await;
    let new = NewFacility {
        name: "数える施設".into(),
        kind: FacilityKind::Internal,
        address: "千歳市".into(),
        department: None,
    };
    let f = store.create_facility(&new, "user:1", now()).await.expect("facility");
    let active = store.create_user(f.id, &staff("count.a"), UserStatus::Active, "user:1", now()).await.expect("user");
    store.create_user(f.id, &staff("count.b"), UserStatus::Invited, "user:1", now()).await.expect("user");
    let mut serials = Vec::new();
    for n in 10..13 {
        let added = store.add_device::<StoreError>(active.id, "pc", "user:1", now(), |_| Ok(fake_cert(n))).await;
        serials.push(added.expect("device").1.serial);
    }
    store.change_certificate(&serials[0], Change::Hold, "user:1", now()).await.expect("hold");
    store
        .retire_user(active.id, "user:1", connect_pki_domain::user::Departure::Allowed, false, now())
        .await
        .expect("retire");
    let counts = store.facility_counts(now()).await.expect("counts");
    let c = counts.iter().find(|c| c.facility == f.id).expect("counted");
    // Retired: their certificates revoked, their devices no longer in use.
    assert_eq!((c.users, c.devices, c.valid, c.on_hold), (1, 0, 0, 0), "{c:?}");
    let city = counts.iter().find(|c| c.facility == FacilityId(1)).expect("the city");
    assert_eq!((city.users, city.devices, city.valid, city.on_hold), (1, 1, 1, 0), "{city:?}");
    // Expired certificates are not counted as valid.
    let later = now() + time::Duration::days(400);
    let city = store.facility_counts(later).await.expect("counts").into_iter().find(|c| c.facility == FacilityId(1));
    assert_eq!(city.map(|c| c.valid), Some(0));

    let devices = store.devices_of(active.id).await.expect("devices");
    assert_eq!(devices.len(), 3);
    assert!(devices.iter().all(|d| d.user == active.id && d.certificates.len() == 1));
}
both_backends!(
    facilities_are_counted_and_devices_listed_per_user,
    crate::listings::facilities_are_counted_and_devices_listed_per_user
);
