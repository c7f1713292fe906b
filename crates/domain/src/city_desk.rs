//! 行政管理課's telephone: the number and hours every page, slip and
//! e-mail gives wherever it tells a person to call (a night-time loss
//! with no number to dial was a wall the city's staff hit).

/// 行政管理課's telephone number and when it answers (`--city-phone`,
/// `--city-phone-hours`), written out wherever a person is told to call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CityDesk {
    pub phone: Option<String>,
    pub hours: Option<String>,
}

/// The words every page, slip and e-mail uses to send someone to the phone.
pub const CALL_THE_CITY: &str = "行政管理課へ電話";

impl CityDesk {
    /// 行政管理課 with its number and hours, as a person dials it:
    /// 「行政管理課（電話 03-1234-5678、平日 8:30〜17:15）」.
    pub fn named(&self) -> String {
        match (&self.phone, &self.hours) {
            (Some(phone), Some(hours)) => format!("行政管理課（電話 {phone}、{hours}）"),
            (Some(phone), None) => format!("行政管理課（電話 {phone}）"),
            _ => "行政管理課".to_string(),
        }
    }

    /// `text` with every 「行政管理課へ電話」 given the number to dial.
    pub fn fill<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.phone.is_none() || !text.contains(CALL_THE_CITY) {
            return std::borrow::Cow::Borrowed(text);
        }
        std::borrow::Cow::Owned(text.replace(CALL_THE_CITY, &format!("{}へ電話", self.named())))
    }

    /// A number and hours a person can read and dial: digits, spaces and
    /// `+-()`, at most 32 characters; hours at most 100 characters of text.
    pub fn new(phone: Option<String>, hours: Option<String>) -> Result<Self, String> {
        let phone = phone.map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
        let hours = hours.map(|h| h.trim().to_string()).filter(|h| !h.is_empty());
        if let Some(p) = &phone {
            let dialable = p.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
            if !dialable || p.chars().count() > 32 || !p.chars().any(|c| c.is_ascii_digit()) {
                return Err(format!("city_phone {p:?}: digits, spaces and + - ( ) only, at most 32 characters"));
            }
        }
        if let Some(h) = &hours {
            if h.chars().count() > 100 || h.chars().any(char::is_control) || h.contains(['<', '>', '&']) {
                return Err("city_phone_hours: at most 100 characters of plain text".into());
            }
            if phone.is_none() {
                return Err("city_phone_hours needs city_phone".into());
            }
        }
        Ok(Self { phone, hours })
    }
}

/// A city department that sponsors outside facilities (担当課): their
/// first contact for questions, through whom eligibility questions go to
/// 福祉課 (configured as `[[departments]]` in config.toml).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Department {
    pub name: String,
    /// How to reach it: a telephone number, an extension, an address.
    pub contact: String,
}

impl Department {
    /// As a page names it: 「高齢者支援課（内線 1234）」.
    pub fn named(&self) -> String {
        if self.contact.is_empty() { self.name.clone() } else { format!("{}（{}）", self.name, self.contact) }
    }
}

/// The configured departments, checked: names unique and plain, at most
/// 100 characters each, contacts likewise.
pub fn departments(list: Vec<Department>) -> Result<Vec<Department>, String> {
    let plain = |t: &str| t.chars().count() <= 100 && !t.chars().any(char::is_control) && !t.contains(['<', '>', '&']);
    let mut seen = std::collections::BTreeSet::new();
    for d in &list {
        if d.name.trim().is_empty() || !plain(&d.name) || !plain(&d.contact) {
            return Err(format!(
                "departments: {:?} needs a name and a contact of at most 100 characters of plain text",
                d.name
            ));
        }
        if !seen.insert(d.name.trim().to_string()) {
            return Err(format!("departments: {:?} is listed twice", d.name));
        }
    }
    Ok(list.into_iter().map(|d| Department { name: d.name.trim().into(), contact: d.contact.trim().into() }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departments_are_named_once_in_plain_text() {
        let d = |n: &str, c: &str| Department { name: n.into(), contact: c.into() };
        let ok = departments(vec![d(" 高齢者支援課 ", "内線 1234"), d("障がい者支援課", "")]).expect("valid");
        assert_eq!(ok[0].named(), "高齢者支援課（内線 1234）");
        assert_eq!(ok[1].named(), "障がい者支援課");
        assert!(departments(vec![d("高齢者支援課", ""), d("高齢者支援課", "x")]).is_err());
        assert!(departments(vec![d("", "x")]).is_err());
        assert!(departments(vec![d("<b>", "x")]).is_err());
    }

    #[test]
    fn a_call_to_the_city_gets_its_number() {
        let desk = CityDesk::new(Some(" 03-1234-5678 ".into()), Some("平日 8:30〜17:15".into())).expect("valid");
        assert_eq!(
            desk.fill("至急の場合は行政管理課へ電話してください。"),
            "至急の場合は行政管理課（電話 03-1234-5678、平日 8:30〜17:15）へ電話してください。"
        );
        assert_eq!(desk.fill("行政管理課が対応します。"), "行政管理課が対応します。", "not a call: left alone");
        let no_number = CityDesk::default();
        assert_eq!(no_number.fill("行政管理課へ電話してください"), "行政管理課へ電話してください");
        let number_only = CityDesk::new(Some("0120-000-000".into()), None).expect("valid");
        assert_eq!(number_only.named(), "行政管理課（電話 0120-000-000）");
    }

    #[test]
    fn only_a_dialable_number_and_plain_hours_are_taken() {
        assert!(CityDesk::new(Some("call me".into()), None).is_err());
        assert!(CityDesk::new(Some("---".into()), None).is_err(), "no digit");
        assert!(CityDesk::new(Some("1".repeat(33)), None).is_err());
        assert!(CityDesk::new(Some("03-1234-5678".into()), Some("<script>".into())).is_err());
        assert!(CityDesk::new(None, Some("平日".into())).is_err(), "hours without a number");
        assert_eq!(CityDesk::new(Some("  ".into()), None), Ok(CityDesk::default()));
        assert!(CityDesk::new(Some("+81 (3) 1234-5678".into()), Some("24時間".into())).is_ok());
    }
}
