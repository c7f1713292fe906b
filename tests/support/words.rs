//! The code's own words, which no page a city clerk, a facility manager or
//! a member of staff reads may show (issue 25, item 6): action names
//! (`certificate.revoke`), actor and target keys (`user:5`), roles, states
//! and field names in snake_case (`admin_division`), raw JSON, RFC 5280
//! reasons in camelCase and states as stored. Shared by the in-process walk
//! of the pages and the Chromium one.

use connect_pki_domain::{AuditAction, CertStatus, Role};
use regex::Regex;

/// Product names people read as written; the camelCase rule would take them.
const PRODUCTS: [&str; 5] = ["iPhone", "iPad", "iPod", "macOS", "iOS"];

/// The patterns that must never match a page's visible text.
pub fn forbidden() -> Vec<Regex> {
    let mut words: Vec<String> = AuditAction::ALL.iter().map(|a| regex::escape(a.as_str())).collect();
    words.extend(Role::ALL.iter().filter(|r| **r != Role::Staff).map(|r| regex::escape(r.as_str())));
    words.extend(CertStatus::ALL.iter().filter(|s| s.as_str().contains('_')).map(|s| regex::escape(s.as_str())));
    vec![
        Regex::new(&format!(r"\b({})\b", words.join("|"))).expect("regex"),
        Regex::new(
            r"\b(user|device|certificate|facility|escalation|application|enrollment_code|public|system|code):[\w.]",
        )
        .expect("regex"),
        // snake_case field and state names.
        Regex::new(r"\b[a-z]+(_[a-z]+)+\b").expect("regex"),
        Regex::new(r#"\{\s*""#).expect("regex"),
        // RFC 5280 reasons and the states as stored (camelCase, or bare English).
        Regex::new(r"\b[a-z]+[A-Z][A-Za-z]+\b").expect("regex"),
        Regex::new(r"\b(null|true|false|ok|valid|revoked|invited|active|retired|deleted|approved|suspended|forbidden|refused)\b")
            .expect("regex"),
    ]
}

/// Every code word on `page` (whose visible text is `text`), each with the
/// words around it, as "`page`: "word" in …context…".
pub fn code_words(page: &str, text: &str) -> Vec<String> {
    let mut text = text.to_string();
    for p in PRODUCTS {
        text = text.replace(p, " ");
    }
    let mut found = Vec::new();
    for rule in forbidden() {
        for m in rule.find_iter(&text).take(3) {
            let at = (0..=m.start().saturating_sub(40)).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            let around: String = text[at..].chars().take(90).collect();
            found.push(format!(
                "{page}: {:?} in …{}…",
                m.as_str(),
                around.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    found
}
