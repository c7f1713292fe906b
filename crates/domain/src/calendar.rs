//! The city's business calendar: Japanese national holidays computed from the
//! law's rules (国民の祝日に関する法律), the year-end closure (年末年始,
//! 12/29–1/3), configured closure days, and opening hours. Pure: the caller
//! gives the local date and time (Asia/Tokyo) and the configuration.
//!
//! The rules are computed, not listed, so the calendar is right for years no
//! list covers: fixed days, Happy Monday days, the equinoxes by the standard
//! astronomical approximation (1900–2150), 振替休日 and 国民の休日. The one-off
//! moves of the Tokyo Olympics special law (2020, 2021) are the only dated
//! exceptions. [`tokyo`] gives an instant's local date and time.

use std::collections::BTreeMap;

use time::{Date, Month, OffsetDateTime, Time, Weekday};

use crate::error::DomainError;

/// A closed day and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedDay {
    pub date: Date,
    pub name: String,
}

/// Opening hours and extra closures (DESIGN §1: 08:45–17:15 Monday to Friday).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessHours {
    pub opens: Time,
    /// The last minute that is still open (17:15 means 17:15:59 is open, 17:16 is not).
    pub closes: Time,
    /// Extra closure days with their names (e.g. a system maintenance day).
    pub closures: BTreeMap<Date, String>,
    /// Whether 12/29–1/3 is closed (年末年始).
    pub year_end_closure: bool,
}

impl Default for BusinessHours {
    fn default() -> Self {
        Self {
            opens: Time::from_hms(8, 45, 0).unwrap_or(Time::MIDNIGHT),
            closes: Time::from_hms(17, 15, 0).unwrap_or(Time::MIDNIGHT),
            closures: BTreeMap::new(),
            year_end_closure: true,
        }
    }
}

fn date(year: i32, month: Month, day: u8) -> Option<Date> {
    Date::from_calendar_date(year, month, day).ok()
}

/// The `n`th `weekday` of a month (Happy Monday rule).
fn nth_weekday(year: i32, month: Month, weekday: Weekday, n: u8) -> Option<Date> {
    let first = date(year, month, 1)?;
    let offset = (7 + weekday.number_days_from_monday() as i16 - first.weekday().number_days_from_monday() as i16) % 7;
    date(year, month, 1 + offset as u8 + 7 * (n - 1))
}

/// Day of the vernal (spring) or autumnal equinox in March/September, by the
/// formula the National Astronomical Observatory's predictions follow.
fn equinox_day(year: i32, spring: bool) -> Option<u8> {
    let (a, b) = match year {
        1900..=1979 => (20.8357, 23.2588),
        1980..=2099 => (20.8431, 23.2488),
        2100..=2150 => (21.8510, 24.2488),
        _ => return None,
    };
    let base = if spring { a } else { b };
    let y = f64::from(year - 1980);
    Some((base + 0.242194 * y - (y / 4.0).floor()).floor() as u8)
}

/// The national holidays proper (国民の祝日) of a year, before substitutes.
fn statutory(year: i32) -> Vec<(Date, &'static str)> {
    use Month::*;
    let mut out: Vec<(Option<Date>, &'static str)> = vec![(date(year, January, 1), "元日")];
    out.push((
        if year >= 2000 { nth_weekday(year, January, Weekday::Monday, 2) } else { date(year, January, 15) },
        "成人の日",
    ));
    if year >= 1967 {
        out.push((date(year, February, 11), "建国記念の日"));
    }
    if year >= 2020 {
        out.push((date(year, February, 23), "天皇誕生日"));
    }
    out.push((equinox_day(year, true).and_then(|d| date(year, March, d)), "春分の日"));
    out.push((
        date(year, April, 29),
        if year >= 2007 {
            "昭和の日"
        } else if year >= 1989 {
            "みどりの日"
        } else {
            "天皇誕生日"
        },
    ));
    out.push((date(year, May, 3), "憲法記念日"));
    if year >= 2007 {
        out.push((date(year, May, 4), "みどりの日"));
    }
    out.push((date(year, May, 5), "こどもの日"));
    let marine = match year {
        2020 => date(year, July, 23),
        2021 => date(year, July, 22),
        2003.. => nth_weekday(year, July, Weekday::Monday, 3),
        1996..=2002 => date(year, July, 20),
        _ => None,
    };
    out.push((marine, "海の日"));
    let mountain = match year {
        2020 => date(year, August, 10),
        2021 => date(year, August, 8),
        2016.. => date(year, August, 11),
        _ => None,
    };
    out.push((mountain, "山の日"));
    out.push((
        if year >= 2003 { nth_weekday(year, September, Weekday::Monday, 3) } else { date(year, September, 15) },
        "敬老の日",
    ));
    out.push((equinox_day(year, false).and_then(|d| date(year, September, d)), "秋分の日"));
    let sports = match year {
        2020 => date(year, July, 24),
        2021 => date(year, July, 23),
        2000.. => nth_weekday(year, October, Weekday::Monday, 2),
        _ => date(year, October, 10),
    };
    out.push((sports, if year >= 2020 { "スポーツの日" } else { "体育の日" }));
    out.push((date(year, November, 3), "文化の日"));
    out.push((date(year, November, 23), "勤労感謝の日"));
    if (1989..=2018).contains(&year) {
        out.push((date(year, December, 23), "天皇誕生日"));
    }
    let mut days: Vec<(Date, &'static str)> = out.into_iter().filter_map(|(d, n)| d.map(|d| (d, n))).collect();
    days.sort_by_key(|(d, _)| *d);
    days
}

/// The local (Asia/Tokyo) date and time of an instant, from the tz database
/// `jiff` carries.
pub fn tokyo(t: OffsetDateTime) -> Result<(Date, Time), DomainError> {
    let bad = |e: &dyn std::fmt::Display| DomainError::Invalid { field: "time", why: format!("Asia/Tokyo: {e}") };
    let z =
        jiff::Timestamp::from_second(t.unix_timestamp()).and_then(|ts| ts.in_tz("Asia/Tokyo")).map_err(|e| bad(&e))?;
    let (month, day, hour, minute, second) = (z.month(), z.day(), z.hour(), z.minute(), z.second());
    let u8_of = |n: i8| u8::try_from(n).map_err(|e| bad(&e));
    let month = Month::try_from(u8_of(month)?).map_err(|e| bad(&e))?;
    let date = Date::from_calendar_date(i32::from(z.year()), month, u8_of(day)?).map_err(|e| bad(&e))?;
    let at = Time::from_hms(u8_of(hour)?, u8_of(minute)?, u8_of(second)?).map_err(|e| bad(&e))?;
    Ok((date, at))
}

/// Every national holiday of a year (祝日, 振替休日, 国民の休日), by date.
pub(crate) fn national_holidays(year: i32) -> BTreeMap<Date, String> {
    let mut days: BTreeMap<Date, String> = statutory(year).into_iter().map(|(d, n)| (d, n.to_string())).collect();
    // 国民の休日 (since 1988): a weekday between two holidays is a holiday too.
    let base: Vec<Date> = days.keys().copied().collect();
    for pair in base.windows(2) {
        if let Some(between) = pair[0].next_day()
            && between.next_day() == Some(pair[1])
            && !days.contains_key(&between)
            && between.weekday() != Weekday::Sunday
        {
            days.insert(between, "国民の休日".into());
        }
    }
    // 振替休日 (rule of 2007): a holiday on Sunday moves the rest day to the
    // next day that is not already a holiday.
    let sundays: Vec<(Date, String)> =
        days.iter().filter(|(d, _)| d.weekday() == Weekday::Sunday).map(|(d, n)| (*d, n.clone())).collect();
    for (sunday, name) in sundays {
        let mut d = sunday.next_day();
        while let Some(day) = d {
            if let std::collections::btree_map::Entry::Vacant(e) = days.entry(day) {
                e.insert(format!("{name} 振替休日"));
                break;
            }
            d = day.next_day();
        }
    }
    days.retain(|d, _| d.year() == year);
    days
}

impl BusinessHours {
    /// Every closed weekday-or-weekend day of a year that is closed for a
    /// reason other than being a weekend: holidays, 年末年始, configured closures.
    pub fn closed_days(&self, year: i32) -> Vec<ClosedDay> {
        let mut days = national_holidays(year);
        if self.year_end_closure {
            for (m, from, to) in [(Month::January, 1, 3), (Month::December, 29, 31)] {
                for d in from..=to {
                    if let Some(date) = date(year, m, d) {
                        days.entry(date).or_insert_with(|| "年末年始".into());
                    }
                }
            }
        }
        for (d, n) in self.closures.range(date(year, Month::January, 1).unwrap_or(Date::MIN)..) {
            if d.year() != year {
                break;
            }
            days.entry(*d).or_insert_with(|| n.clone());
        }
        days.into_iter().map(|(date, name)| ClosedDay { date, name }).collect()
    }

    /// Why a day is closed, if it is (weekends included).
    pub(crate) fn closed_reason(&self, day: Date) -> Option<String> {
        if let Some(name) = national_holidays(day.year()).remove(&day) {
            return Some(name);
        }
        let year_end = matches!((day.month(), day.day()), (Month::December, 29..=31) | (Month::January, 1..=3));
        if self.year_end_closure && year_end {
            return Some("年末年始".into());
        }
        if let Some(name) = self.closures.get(&day) {
            return Some(name.clone());
        }
        match day.weekday() {
            Weekday::Saturday => Some("土曜日".into()),
            Weekday::Sunday => Some("日曜日".into()),
            _ => None,
        }
    }

    /// Whether the office is open at a local (Asia/Tokyo) date and time.
    pub fn is_open(&self, day: Date, at: Time) -> bool {
        let minute = |t: Time| u32::from(t.hour()) * 60 + u32::from(t.minute());
        self.closed_reason(day).is_none() && (minute(self.opens)..=minute(self.closes)).contains(&minute(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]")).expect("date")
    }

    /// Day by day against the shared list of 2025–2027 (two independent
    /// libraries following the Cabinet Office), every day of each year.
    #[test]
    fn holidays_match_the_cabinet_office_list_2025_to_2027() {
        let text = include_str!("../tests/data/jp-holidays-2025-2027.csv");
        let mut expected: BTreeMap<Date, String> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.starts_with("date,")) {
            let (date, name) = line.split_once(',').expect("date,name");
            expected.insert(d(date), name.to_string());
        }
        assert!(expected.len() > 40, "the list is too short: {}", expected.len());
        for year in 2025..=2027 {
            let mut day = d(&format!("{year}-01-01"));
            let computed = national_holidays(year);
            while day.year() == year {
                assert_eq!(computed.get(&day), expected.get(&day), "{day}");
                day = day.next_day().expect("next");
            }
        }
    }

    #[test]
    fn tokyo_is_nine_hours_ahead_across_the_date_line() {
        let at = time::macros::datetime!(2026-12-31 15:30:05 UTC);
        assert_eq!(tokyo(at), Ok((d("2027-01-01"), time::macros::time!(00:30:05))));
        let at = time::macros::datetime!(2027-06-14 00:00 UTC);
        assert_eq!(tokyo(at), Ok((d("2027-06-14"), time::macros::time!(09:00))));
    }

    #[test]
    fn known_years_outside_the_list() {
        // 2019: 10-day Golden Week is a special law (not modelled); check the
        // rules that apply in any year instead.
        let h2030 = national_holidays(2030);
        assert_eq!(h2030.get(&d("2030-03-20")).map(String::as_str), Some("春分の日"));
        assert_eq!(h2030.get(&d("2030-09-23")).map(String::as_str), Some("秋分の日"));
        let h2032 = national_holidays(2032);
        // 2032: 敬老の日 9/20 and 秋分の日 9/22 sandwich 9/21.
        assert_eq!(h2032.get(&d("2032-09-21")).map(String::as_str), Some("国民の休日"));
        let h2021 = national_holidays(2021);
        assert_eq!(h2021.get(&d("2021-07-23")).map(String::as_str), Some("スポーツの日"));
        assert_eq!(h2021.get(&d("2021-08-09")).map(String::as_str), Some("山の日 振替休日"));
    }

    #[test]
    fn opening_hours_edges() {
        let b = BusinessHours::default();
        let t = |h, m| Time::from_hms(h, m, 0).expect("time");
        let tuesday = d("2026-11-24");
        assert!(!b.is_open(tuesday, t(8, 44)));
        assert!(b.is_open(tuesday, t(8, 45)));
        assert!(b.is_open(tuesday, t(17, 15)));
        assert!(!b.is_open(tuesday, t(17, 16)));
        assert!(b.is_open(d("2026-12-28"), t(10, 0)), "12/28 is a working day");
        assert!(!b.is_open(d("2026-12-29"), t(10, 0)), "12/29 starts 年末年始");
        assert!(!b.is_open(d("2027-01-03"), t(10, 0)));
        assert!(b.is_open(d("2027-01-04"), t(10, 0)), "1/4 is a working day");
        assert!(!b.is_open(d("2026-11-28"), t(10, 0)), "Saturday");
        assert!(!b.is_open(d("2026-11-23"), t(10, 0)), "勤労感謝の日");
    }

    #[test]
    fn configured_closures_close_the_office_and_are_listed() {
        let mut b = BusinessHours::default();
        b.closures.insert(d("2026-06-15"), "システム保守日".into());
        assert_eq!(b.closed_reason(d("2026-06-15")).as_deref(), Some("システム保守日"));
        let days = b.closed_days(2026);
        assert!(days.iter().any(|c| c.date == d("2026-06-15") && c.name == "システム保守日"));
        assert!(days.iter().any(|c| c.date == d("2026-12-31") && c.name == "年末年始"));
        assert!(days.iter().any(|c| c.date == d("2026-01-01") && c.name == "元日"), "holiday names win over 年末年始");
    }
}
