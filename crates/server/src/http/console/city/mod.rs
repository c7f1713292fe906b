//! The pages of the city's divisions — facility applications (福祉課,
//! 行政管理課), the facilities and their suspension (行政管理課 acts, 福祉課
//! reads), the audit log (行政管理課 all of it, a facility manager their
//! facility's), certificate lifetimes across facilities and the CA's own
//! and the relying parties that check them (行政管理課) — and every role's own devices (`/console/me`). Each page asks
//! the service with the caller's requester; a refusal becomes the Japanese
//! refusal page and shows nothing else.

mod applications;
mod audit;
mod expiring;
mod facilities;
mod facility;
mod me;
mod phone;
mod relying;

use axum::Router;
use connect_pki_domain::{FacilityKind, FacilityStatus};

use crate::http::state::AppState;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(applications::routes())
        .merge(facilities::routes())
        .merge(facility::routes())
        .merge(audit::routes())
        .merge(expiring::routes())
        .merge(me::routes())
        .merge(phone::routes())
        .merge(relying::routes())
        .with_state(state)
}

fn kind_ja(k: FacilityKind) -> &'static str {
    match k {
        FacilityKind::Internal => "庁内",
        FacilityKind::External => "庁外",
    }
}

fn facility_status_ja(s: FacilityStatus) -> &'static str {
    match s {
        FacilityStatus::Approved => "利用中",
        FacilityStatus::Suspended => "利用停止中",
        FacilityStatus::Closed => "廃止",
    }
}
