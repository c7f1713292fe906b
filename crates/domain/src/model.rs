//! The closed sets of states and kinds that the lifecycles move through
//! (DESIGN §2–§3). Each has one textual form, used in the database and at the
//! API alike.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident, $field:literal { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $var),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The textual form stored in the database and shown at the API.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
        }

        // By hand: the derive does not see serde's renames through this
        // macro and would list the variants' Rust names.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$var),)+
                    _ => Err(DomainError::Invalid {
                        field: $field,
                        why: format!("{s:?} is not one of: {}", [$($text),+].join(", ")),
                    }),
                }
            }
        }
    };
}

text_enum!(
    /// What a user may do (DESIGN §2).
    Role, "role" {
        /// 行政管理課 情報システム係: everything; works the after-hours queue.
        AdminDivision = "admin_division",
        /// 福祉課 総合支援係: approves facility applications.
        WelfareDivision = "welfare_division",
        /// 施設管理者 of one facility.
        FacilityManager = "facility_manager",
        /// A registered member of staff.
        Staff = "staff",
        /// A device-management system (Intune, Jamf…) serving one facility:
        /// fetches one-time enrollment challenges for its people and
        /// reports devices retired, wiped or lost.
        DeviceManagement = "device_management",
    }
);

impl Role {
    /// A role only 行政管理課 grants and acts on, whatever facility the
    /// user is placed in: the city's own divisions, and a device-management
    /// system (a facility's manager never holds its keys).
    pub const fn is_city(self) -> bool {
        matches!(self, Role::AdminDivision | Role::WelfareDivision | Role::DeviceManagement)
    }
}

text_enum!(
    /// A city department (庁内) or an outside organisation (庁外).
    FacilityKind, "kind" {
        Internal = "internal",
        External = "external",
    }
);

text_enum!(
    /// Facility lifecycle after approval (DESIGN §3).
    FacilityStatus, "facility status" {
        Approved = "approved",
        Suspended = "suspended",
        Closed = "closed",
    }
);

text_enum!(
    /// User lifecycle (DESIGN §3).
    UserStatus, "user status" {
        Invited = "invited",
        Active = "active",
        Retired = "retired",
        Deleted = "deleted",
    }
);

text_enum!(
    /// Certificate lifecycle (DESIGN §3). `Superseded` marks a certificate
    /// replaced by renewal.
    CertStatus, "certificate status" {
        Valid = "valid",
        OnHold = "on_hold",
        Revoked = "revoked",
        Superseded = "superseded",
    }
);

text_enum!(
    /// A facility's application: waiting for 福祉課 or 行政管理課, then decided.
    ApplicationStatus, "application status" {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
    }
);

text_enum!(
    /// A device: in use, reported lost, or retired with its user.
    DeviceStatus, "device status" {
        Active = "active",
        Lost = "lost",
        Retired = "retired",
    }
);

text_enum!(
    /// An escalation's lifecycle: open → claimed → resolved.
    EscalationStatus, "escalation status" {
        Open = "open",
        Claimed = "claimed",
        Resolved = "resolved",
    }
);

text_enum!(
    /// Which queue an escalation is in.
    Queue, "queue" {
        /// The facility's manager.
        Manager = "manager",
        /// 行政管理課 (admin_division).
        AdminDivision = "admin_division",
    }
);

text_enum!(
    /// What an audit record says was done (or refused).
    AuditAction, "audit action" {
        ApplicationSubmit = "application.submit",
        ApplicationApprove = "application.approve",
        ApplicationReject = "application.reject",
        /// A rejected application's personal data removed after its retention.
        ApplicationPurge = "application.purge",
        FacilityCreate = "facility.create",
        FacilitySuspend = "facility.suspend",
        FacilityResume = "facility.resume",
        FacilityClose = "facility.close",
        /// A facility's certificate lifetimes set (by hand, managed).
        FacilityLifetimes = "facility.lifetimes",
        UserCreate = "user.create",
        UserRetire = "user.retire",
        UserRetireScheduled = "user.retire_scheduled",
        UserRetireCancelled = "user.retire_cancelled",
        /// A user's personal data deleted.
        UserDelete = "user.delete",
        /// A name, e-mail address or role changed.
        UserUpdate = "user.update",
        /// Moved to another facility (異動): certificates revoked, the account kept.
        UserTransfer = "user.transfer",
        /// The emergency sign-in's password set anew by the person's manager.
        UserPasswordReset = "user.password_reset",
        DeviceCreate = "device.create",
        DeviceLost = "device.lost",
        /// A device retired or wiped, as its device-management system reported.
        DeviceRetire = "device.retire",
        EnrollmentCodeCreate = "enrollment_code.create",
        EnrollmentRedeem = "enrollment.redeem",
        CertificateIssue = "certificate.issue",
        CertificateRenew = "certificate.renew",
        CertificateRevoke = "certificate.revoke",
        CertificateHold = "certificate.hold",
        CertificateRelease = "certificate.release",
        CertificateExpiryNotice = "certificate.expiry_notice",
        EmergencySignIn = "emergency.sign_in",
        EscalationOpen = "escalation.open",
        EscalationClaim = "escalation.claim",
        EscalationEscalate = "escalation.escalate",
        EscalationResolve = "escalation.resolve",
        TermsAccept = "terms.accept",
        /// A facility's accounts reviewed (棚卸し) by its manager or 行政管理課.
        AccountReview = "account.review",
        /// A facility's managers reminded by e-mail that its review is due.
        AccountReviewReminder = "account.review_reminder",
        /// A holder of our certificate refused (403) by the API.
        RequestRefused = "request.refused",
        /// Revocations put back from a kept CRL after a restore.
        CrlReapply = "crl.reapply",
        /// Revocations an instance still enforced put back into a database
        /// that went back (restored under running instances, a failover).
        RevocationsWriteBack = "revocations.write_back",
        CaRollover = "ca.rollover",
        CaOcspSignerRenew = "ca.ocsp_signer.renew",
        CaTlsServerRenew = "ca.tls_server.renew",
    }
);

text_enum!(
    /// How a notification travels.
    NotifyChannel, "notification channel" {
        /// A JSON POST, signed with HMAC-SHA256.
        Webhook = "webhook",
        Email = "email",
    }
);

text_enum!(
    /// RFC 5280 §5.3.1 CRLReason, by its RFC name.
    Reason, "reason" {
        Unspecified = "unspecified",
        KeyCompromise = "keyCompromise",
        CaCompromise = "cACompromise",
        AffiliationChanged = "affiliationChanged",
        Superseded = "superseded",
        CessationOfOperation = "cessationOfOperation",
        CertificateHold = "certificateHold",
        RemoveFromCrl = "removeFromCRL",
        PrivilegeWithdrawn = "privilegeWithdrawn",
        AaCompromise = "aACompromise",
    }
);

impl Reason {
    /// The CRLReason enumeration value (RFC 5280 §5.3.1; 7 is unused).
    pub(crate) const fn code(self) -> u8 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::CaCompromise => 2,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
            Reason::CertificateHold => 6,
            Reason::RemoveFromCrl => 8,
            Reason::PrivilegeWithdrawn => 9,
            Reason::AaCompromise => 10,
        }
    }

    /// The reason with CRLReason enumeration value `code`, if there is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }
}

impl FacilityStatus {
    /// Checks a facility lifecycle step (DESIGN §3): approved ⇄ suspended,
    /// approved or suspended → closed. Closed is final.
    pub fn transition(self, to: FacilityStatus) -> Result<(), DomainError> {
        use FacilityStatus::*;
        match (self, to) {
            (Approved, Suspended) | (Suspended, Approved) | (Approved, Closed) | (Suspended, Closed) => Ok(()),
            _ => Err(DomainError::InvalidTransition { from: self.as_str(), to: to.as_str() }),
        }
    }
}

impl CertStatus {
    /// Whether a certificate in this state identifies its holder.
    pub const fn is_usable(self) -> bool {
        matches!(self, CertStatus::Valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_text() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(*r));
        }
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(*r));
            assert_eq!(serde_json::to_string(r).ok(), Some(format!("\"{}\"", r.as_str())));
        }
        for s in CertStatus::ALL {
            assert_eq!(s.as_str().parse::<CertStatus>(), Ok(*s));
        }
    }

    #[test]
    fn unknown_text_names_the_allowed_values() {
        let err = "boss".parse::<Role>().expect_err("rejected");
        assert!(err.to_string().contains("admin_division"), "{err}");
    }

    #[test]
    fn facility_lifecycle() {
        use FacilityStatus::*;
        for (from, to, ok) in [
            (Approved, Suspended, true),
            (Suspended, Approved, true),
            (Approved, Closed, true),
            (Suspended, Closed, true),
            (Closed, Approved, false),
            (Closed, Suspended, false),
            (Approved, Approved, false),
        ] {
            assert_eq!(from.transition(to).is_ok(), ok, "{from} → {to}");
        }
    }

    #[test]
    fn reason_codes_follow_rfc_5280() {
        assert_eq!(Reason::KeyCompromise.code(), 1);
        assert_eq!(Reason::CertificateHold.code(), 6);
        assert_eq!(Reason::RemoveFromCrl.code(), 8);
        assert_eq!(Reason::AaCompromise.code(), 10);
    }
}
