//! A facility's application to use CONNECT (運用ルール 1 and 5): what it must
//! contain before the city looks at it.

use crate::error::DomainError;
use crate::model::FacilityKind;
use crate::validate;

/// An application as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationForm {
    pub name: String,
    pub kind: FacilityKind,
    pub address: String,
    /// The sponsoring city department (担当課); required for outside organisations.
    pub department: Option<String>,
    pub manager_name: String,
    pub manager_login_id: String,
    pub manager_email: String,
    pub manager_phone: String,
    /// The applicant confirms use is limited to 重層的支援体制整備事業 duties.
    pub purpose_attested: bool,
    pub terms_version: String,
}

impl ApplicationForm {
    /// Checks every field and returns the cleaned form; `terms_version` is
    /// the version of the terms of use (利用規約) in force, which the
    /// applicant must have accepted. The first problem found is reported,
    /// by field name.
    pub fn validate(self, terms_version: &str) -> Result<Self, DomainError> {
        let department = validate::optional_text("department", self.department.as_deref(), 100)?;
        if self.kind == FacilityKind::External && department.is_none() {
            return Err(DomainError::Invalid {
                field: "department",
                why: "is required for an outside organisation (庁外): name the sponsoring city department".into(),
            });
        }
        if !self.purpose_attested {
            return Err(DomainError::Invalid {
                field: "purpose_attested",
                why: "must be true: use is limited to 重層的支援体制整備事業 duties".into(),
            });
        }
        if self.terms_version.trim() != terms_version {
            return Err(DomainError::Invalid {
                field: "terms_version",
                why: format!("must be the current terms of use, {terms_version}, read and accepted"),
            });
        }
        Ok(Self {
            name: validate::text("name", &self.name, 100)?,
            kind: self.kind,
            address: validate::text("address", &self.address, 200)?,
            department,
            manager_name: validate::text("manager.name", &self.manager_name, 100)?,
            manager_login_id: validate::login_id(&self.manager_login_id)?,
            manager_email: validate::email(&self.manager_email)?,
            manager_phone: validate::phone(&self.manager_phone)?,
            purpose_attested: true,
            terms_version: terms_version.to_string(),
        })
    }
}

/// How long a rejected application (the applicant's personal data with it)
/// is kept after the decision before it is purged: time for the applicant
/// to read the reason and ask about it.
pub const DEFAULT_REJECTED_RETENTION_DAYS: u32 = 90;

#[cfg(test)]
mod tests {
    use super::*;

    const TERMS_VERSION: &str = "2026-04-01";

    fn form() -> ApplicationForm {
        ApplicationForm {
            name: " 地域包括支援センター北 ".into(),
            kind: FacilityKind::External,
            address: "千歳市北栄1丁目".into(),
            department: Some("高齢者支援課".into()),
            manager_name: "北 太郎".into(),
            manager_login_id: "kita.taro".into(),
            manager_email: "kita@example.test".into(),
            manager_phone: "0123-00-0000".into(),
            purpose_attested: true,
            terms_version: TERMS_VERSION.into(),
        }
    }

    #[test]
    fn a_complete_form_is_accepted_and_trimmed() {
        assert_eq!(form().validate(TERMS_VERSION).expect("valid").name, "地域包括支援センター北");
    }

    #[test]
    fn each_missing_piece_names_its_field() {
        let cases: Vec<(ApplicationForm, &str)> = vec![
            (ApplicationForm { department: None, ..form() }, "department"),
            (ApplicationForm { purpose_attested: false, ..form() }, "purpose_attested"),
            (ApplicationForm { terms_version: "2020-01-01".into(), ..form() }, "terms_version"),
            (ApplicationForm { name: " ".into(), ..form() }, "name"),
            (ApplicationForm { manager_login_id: "X".into(), ..form() }, "login_id"),
            (ApplicationForm { manager_email: "nope".into(), ..form() }, "email"),
        ];
        for (f, field) in cases {
            match f.validate(TERMS_VERSION) {
                Err(DomainError::Invalid { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        let internal = ApplicationForm { kind: FacilityKind::Internal, department: None, ..form() };
        assert!(internal.validate(TERMS_VERSION).is_ok(), "city departments need no sponsor");
    }
}
