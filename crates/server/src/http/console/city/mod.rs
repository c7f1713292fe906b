//! The pages of the city's divisions — facility applications (福祉課,
//! 行政管理課), the facilities and their suspension (行政管理課 acts, 福祉課
//! reads), the audit log (行政管理課 all of it, a facility manager their
//! facility's) — and every role's own devices (`/console/me`). Each page asks
//! the service with the caller's requester; a refusal becomes the Japanese
//! refusal page and shows nothing else.

mod applications;
mod audit;
mod facilities;
mod me;

use axum::Router;
use axum::http::{HeaderMap, Uri, header};
use connect_pki_domain::{FacilityKind, FacilityStatus};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(applications::routes())
        .merge(facilities::routes())
        .merge(audit::routes())
        .merge(me::routes())
        .with_state(state)
}

/// The address this console was reached at (`https://host:port`): the
/// public pages (enroll, emergency) are served on the same listener.
fn origin(headers: &HeaderMap, uri: &Uri) -> String {
    // HTTP/1.1 names the host in Host; HTTP/2 in the :authority of the URI.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into());
    format!("https://{host}")
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
