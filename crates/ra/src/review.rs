//! Account review (棚卸し): the devices nobody has used for
//! `review_unused_after`, for a facility's manager (their own) and for
//! 行政管理課 (every facility), and the confirmation each period that the
//! list was looked at (recorded in the audit log).

use connect_pki_domain::user::review_due;
use connect_pki_domain::{Action, FacilityId, authorize};
use connect_pki_store::UnusedDevice;
use time::OffsetDateTime;

use crate::Ra;
use crate::error::ServiceError;
use crate::requester::Requester;

/// A facility's review: what is unused, when it was last confirmed, and
/// whether a confirmation is due.
#[derive(Debug)]
pub struct Review {
    pub unused: Vec<UnusedDevice>,
    pub last: Option<OffsetDateTime>,
    pub due: bool,
}

pub async fn of_facility(ra: &Ra, caller: &Requester, facility: FacilityId) -> Result<Review, ServiceError> {
    authorize(&caller.actor, Action::ManageUsers(facility))?;
    let now = ra.clock.now();
    let unused = ra.store.unused_devices(Some(facility), now - ra.settings.review_unused_after).await?;
    let last = ra.store.last_review(facility).await?;
    Ok(Review { unused, last, due: review_due(last, now, ra.settings.review_period) })
}

/// Every facility's unused devices (行政管理課).
pub async fn everywhere(ra: &Ra, caller: &Requester) -> Result<Vec<UnusedDevice>, ServiceError> {
    authorize(&caller.actor, Action::ListAllCertificates)?;
    Ok(ra.store.unused_devices(None, ra.clock.now() - ra.settings.review_unused_after).await?)
}

/// Records that the caller reviewed `facility`'s accounts now.
pub async fn confirm(ra: &Ra, caller: &Requester, facility: FacilityId) -> Result<(), ServiceError> {
    let review = of_facility(ra, caller, facility).await?;
    let now = ra.clock.now();
    Ok(ra.store.record_review(facility, review.unused.len(), &caller.audit_name, caller.actor.user, now).await?)
}
