//! The audit log as a page for 行政管理課 (the reader of `GET /api/v1/audit`):
//! newest first, filtered by facility, user, days and kind of action, in
//! Japanese (`records`), with the same lines as CSV that Excel on Japanese
//! Windows opens. A facility manager's own
//! trail is on the manager's pages.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use connect_pki_domain::{FacilityId, UserId};
use connect_pki_store::{AuditFilter, AuditRecord};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::http::api::audit_csv;
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, Refusal, page, refuse, tokyo_day_start};
use crate::http::console::records::{Line, Names, line};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{audit, facilities};

const HERE: &str = "/console/audit";
const PAGE: i64 = 200;

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(HERE, get(show)).route("/console/audit.csv", get(csv))
}

/// The kinds of action a reader picks from: (family, Japanese name).
const FAMILIES: [(&str, &str); 12] = [
    ("application", "施設の申請"),
    ("facility", "施設（作成・停止・再開・廃止）"),
    ("user", "職員（登録・退職・削除）"),
    ("enrollment_code", "登録コードの発行"),
    ("enrollment", "端末の登録"),
    ("device", "端末（追加・紛失）"),
    ("certificate", "証明書（発行・更新・失効・一時停止・期限のお知らせ）"),
    ("escalation", "緊急届出"),
    ("emergency", "緊急時サインイン"),
    ("terms", "利用規約への同意"),
    ("account", "アカウントの棚卸し"),
    ("request", "拒否されたアクセス"),
];

/// The filter as typed: every field text, so a wrong one can be shown back.
#[derive(Debug, Default, Deserialize)]
struct Fields {
    #[serde(default)]
    facility: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    before: String,
}

/// A field the reader must correct: (field, message).
type FieldError = (&'static str, &'static str);

fn number(field: &'static str, v: &str) -> Result<Option<i64>, FieldError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<i64>().ok().filter(|n| *n > 0).map(Some).ok_or((field, "半角数字の番号を入力してください。"))
}

/// The first instant of `day` (YYYY-MM-DD) in Asia/Tokyo, `days` later.
fn day_start(field: &'static str, v: &str, days: i64) -> Result<Option<OffsetDateTime>, FieldError> {
    tokyo_day_start(v, days).map_err(|_| (field, "日付は 2026-04-01 の形で入力してください。"))
}

fn action(v: &str) -> Result<Option<String>, FieldError> {
    let v = v.trim();
    let ok = v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
    match v {
        "" => Ok(None),
        _ if ok && v.split('.').count() <= 2 => Ok(Some(v.to_string())),
        _ => Err(("action", "操作の種類は一覧から選んでください。")),
    }
}

fn filter(f: &Fields, limit: i64) -> Result<AuditFilter, FieldError> {
    Ok(AuditFilter {
        facility: number("facility", &f.facility)?.map(FacilityId),
        user: number("user", &f.user)?.map(UserId),
        since: day_start("since", &f.since, 0)?,
        // The last day named is included whole.
        until: day_start("until", &f.until, 1)?,
        action: action(&f.action)?,
        before_id: number("before", &f.before)?.unwrap_or(0),
        limit,
        newest_first: true,
        after_id: 0,
    })
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage<'a> {
    ctx: &'a Ctx,
    f: Fields,
    error: Option<FieldError>,
    facilities: Vec<(i64, String)>,
    families: &'static [(&'static str, &'static str)],
    rows: Vec<Line>,
    /// The query of the same filter, for the CSV link and the next page.
    query: String,
    older: Option<i64>,
}

impl AuditPage<'_> {
    fn error_for(&self, field: &str) -> Option<&'static str> {
        self.error.filter(|(f, _)| *f == field).map(|(_, m)| m)
    }
}

/// The query string of a checked filter (only digits, dates and `[a-z_.]`).
fn query_of(f: &Fields) -> String {
    let parts =
        [("facility", &f.facility), ("user", &f.user), ("since", &f.since), ("until", &f.until), ("action", &f.action)];
    parts
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", v.trim()))
        .collect::<Vec<_>>()
        .join("&")
}

async fn show(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Audit>,
    Query(f): Query<Fields>,
) -> PageResult {
    let requester = &ctx.caller.requester;
    let checked = filter(&f, PAGE);
    let records = match &checked {
        Ok(filter) => audit::list(&state, requester, filter).await,
        // Still asked, so a reader without the right is refused here too
        // rather than shown the form.
        Err(_) => audit::list(&state, requester, &AuditFilter { limit: 1, ..AuditFilter::default() })
            .await
            .map(|_| Vec::new()),
    };
    let records = records?;
    let facilities: Vec<(i64, String)> = facilities::facilities(&state, requester)
        .await
        .map(|list| list.into_iter().map(|f| (f.id.0, f.name)).collect())?;
    let older = (records.len() as i64 == PAGE).then(|| records.last().map(|r| r.id)).flatten();
    let names = names_for(&state, requester, &records, &facilities).await?;
    let rows = records.iter().map(|r| line(r, &names)).collect();
    let error = checked.err();
    let query = if error.is_some() { String::new() } else { query_of(&f) };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let p = AuditPage { ctx: &ctx, query, f, error, facilities, families: &FAMILIES, rows, older };
    Ok(page(status, &p))
}

/// The same records as CSV, oldest first like the API's.
async fn csv(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Audit>,
    Query(f): Query<Fields>,
) -> PageResult {
    let filter = match filter(&f, 10_000) {
        Ok(filter) => AuditFilter { newest_first: false, ..filter },
        Err((field, _)) => {
            return Err(Refusal::from(ApiError::from(connect_pki_domain::DomainError::Invalid {
                field,
                why: "see the audit page".into(),
            })));
        }
    };
    let requester = &ctx.caller.requester;
    let records = audit::list(&state, requester, &filter).await?;
    let facilities: Vec<(i64, String)> = facilities::facilities(&state, requester)
        .await
        .map(|list| list.into_iter().map(|f| (f.id.0, f.name)).collect())?;
    let names = names_for(&state, requester, &records, &facilities).await?;
    let rows = records.iter().map(|r| {
        let l = line(r, &names);
        vec![l.id.to_string(), l.at, l.actor, l.action.to_string(), l.target, l.outcome, l.facility, l.user, l.detail]
    });
    // Excel on Japanese Windows reads UTF-8 only after a byte-order mark.
    let body = audit_csv::table(b"\xEF\xBB\xBF", &CSV_HEADER, rows).map_err(refuse)?;
    Ok(audit_csv::attachment(body, "audit.csv"))
}

/// The console CSV's columns, as the page heads them.
const CSV_HEADER: [&str; 9] =
    ["番号", "日時（日本時間）", "操作した人", "操作", "対象", "結果", "施設", "職員", "詳細"];

/// The names of the people `records` mention, and of every facility.
async fn names_for(
    state: &AppState,
    requester: &connect_pki_ra::Requester,
    records: &[AuditRecord],
    facilities: &[(i64, String)],
) -> Result<Names, ApiError> {
    let people = audit::people(state, requester, &Names::wanted(records)).await?;
    Ok(Names::new(&people, facilities.iter().cloned()))
}
