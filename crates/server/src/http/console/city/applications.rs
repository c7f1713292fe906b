//! Facility applications for 福祉課 and 行政管理課: the pending ones with
//! everything the applicant wrote, approval (confirmation → the manager's
//! enrollment code, shown once as a printable slip) and rejection with a
//! reason the applicant will read.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use connect_pki_domain::ApplicationStatus;
use connect_pki_store::ApplicationRecord;
use serde::Deserialize;

use super::kind_ja;
use crate::http::console::kit::Acting;
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{ConfirmPage, Ctx, Fact, PageResult, Refusal, ResultPage, https_base, local, page};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{ServiceError, applications};

const HERE: &str = "/console/applications";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(HERE, get(list))
        .route("/console/applications/{id}/approve", get(approve_confirm).post(approve))
        .route("/console/applications/{id}/reject", get(reject_form).post(reject))
}

/// An application as the city reads it.
struct Row {
    id: i64,
    name: String,
    facts: Vec<Fact>,
    status_ja: &'static str,
    decided: String,
    reason: String,
}

fn row(a: &ApplicationRecord) -> Row {
    let f = &a.form;
    let facts = vec![
        ("種別", kind_ja(f.kind).to_string()),
        ("所在地", f.address.clone()),
        ("担当課", f.department.clone().unwrap_or_else(|| "（なし）".into())),
        ("施設管理者", f.manager_name.clone()),
        ("管理者のログインID", f.manager_login_id.clone()),
        ("管理者のメール", f.manager_email.clone()),
        ("管理者の電話", f.manager_phone.clone()),
        ("同意した利用規約", format!("{} 版", f.terms_version)),
        ("申請日時", local(a.created_at)),
    ];
    Row {
        id: a.id,
        name: f.name.clone(),
        facts,
        status_ja: match a.status {
            ApplicationStatus::Pending => "審査待ち",
            ApplicationStatus::Approved => "承認",
            ApplicationStatus::Rejected => "却下",
        },
        decided: a.decided_at.map(local).unwrap_or_default(),
        reason: a.decision_reason.clone().unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "console/applications.html")]
struct ListPage<'a> {
    ctx: &'a Ctx,
    pending: Vec<Row>,
    decided: Vec<Row>,
}

async fn list(State(state): State<AppState>, Page { ctx, .. }: Page<section::Applications>) -> PageResult {
    let all = applications::list(&state, &ctx.caller.requester, None).await?;
    let (pending, mut decided): (Vec<_>, Vec<_>) = all.iter().partition(|a| a.status == ApplicationStatus::Pending);
    decided.sort_by_key(|a| std::cmp::Reverse(a.decided_at));
    let pending = pending.into_iter().map(row).collect();
    let decided = decided.into_iter().take(20).map(row).collect();
    Ok(page(StatusCode::OK, &ListPage { ctx: &ctx, pending, decided }))
}

/// A pending application the caller may decide, or the page to show instead.
async fn pending(state: &AppState, ctx: &Ctx, id: i64) -> Result<ApplicationRecord, Refusal> {
    let a = applications::one(state, &ctx.caller.requester, id).await.map_err(Refusal::from)?;
    if a.status != ApplicationStatus::Pending {
        let done = ResultPage {
            ctx,
            title: "処理済みの申請",
            message: format!("申請 {}「{}」はすでに{}されています。", a.id, a.form.name, row(&a).status_ja),
            facts: vec![("処理日時", a.decided_at.map(local).unwrap_or_default())],
            back: HERE.into(),
        };
        return Err(Refusal::from(page(StatusCode::CONFLICT, &done)));
    }
    Ok(a)
}

fn who(a: &ApplicationRecord) -> Vec<Fact> {
    let f = &a.form;
    vec![
        ("申請番号", a.id.to_string()),
        ("施設名", f.name.clone()),
        ("施設管理者", format!("{}（ログインID {}）", f.manager_name, f.manager_login_id)),
    ]
}

async fn approve_confirm(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Applications>,
    Path(id): Path<i64>,
) -> PageResult {
    let a = pending(&state, &ctx, id).await?;
    let effect = format!(
        "施設「{}」の利用を承認します。施設管理者 {} さんのアカウントを作り、登録コードを発行します。登録コードは次の画面に一度だけ表示されます。",
        a.form.name, a.form.manager_name
    );
    let confirm = ConfirmPage {
        ctx: &ctx,
        title: "申請の承認",
        facts: who(&a),
        effect,
        action: format!("/console/applications/{id}/approve"),
        fields: Vec::new(),
        button: "承認する",
        back: HERE.into(),
    };
    Ok(page(StatusCode::OK, &confirm))
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    #[serde(default)]
    reason: String,
}

/// The result of an approval: the manager's code, once, as a slip to print.
#[derive(Template)]
#[template(path = "console/approved.html")]
struct ApprovedPage<'a> {
    ctx: &'a Ctx,
    facility_id: i64,
    facility: String,
    manager: String,
    login_id: String,
    code: String,
    expires: String,
    at: String,
    enroll_url: String,
    emergency_url: String,
}

async fn approve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    uri: Uri,
    Acting { caller, .. }: Acting<DecisionForm>,
) -> PageResult {
    let ctx = Ctx::new(&state, caller, HERE);
    let (approval, code, expires_at) = applications::approve(&state, &ctx.caller.requester, id).await?;
    let base = https_base(&state, &headers, &uri);
    let slip = ApprovedPage {
        ctx: &ctx,
        facility_id: approval.facility.id.0,
        facility: approval.facility.name.clone(),
        manager: approval.manager.display_name.clone().unwrap_or_default(),
        login_id: approval.manager.login_id.clone().unwrap_or_default(),
        code,
        expires: local(expires_at),
        at: local(state.clock.now()),
        enroll_url: format!("{base}/enroll"),
        emergency_url: format!("{base}/emergency"),
    };
    Ok(page(StatusCode::OK, &slip))
}

#[derive(Template)]
#[template(path = "console/reject.html")]
struct RejectPage<'a> {
    ctx: &'a Ctx,
    id: i64,
    facts: Vec<Fact>,
    reason: String,
    error: Option<String>,
}

async fn reject_form(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Applications>,
    Path(id): Path<i64>,
) -> PageResult {
    let a = pending(&state, &ctx, id).await?;
    Ok(page(StatusCode::OK, &RejectPage { ctx: &ctx, id, facts: who(&a), reason: String::new(), error: None }))
}

async fn reject(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Acting { caller, form: f }: Acting<DecisionForm>,
) -> PageResult {
    let ctx = Ctx::new(&state, caller, HERE);
    match applications::reject(&state, &ctx.caller.requester, id, &f.reason).await {
        Ok(a) => {
            let mut facts = who(&a);
            facts.push(("理由", a.decision_reason.clone().unwrap_or_default()));
            facts.push(("処理日時", local(state.clock.now())));
            let done = ResultPage {
                ctx: &ctx,
                title: "申請を却下しました",
                message: format!(
                    "申請 {}「{}」を却下しました。申請者は申請状況のページで理由を確認できます。",
                    a.id, a.form.name
                ),
                facts,
                back: HERE.into(),
            };
            Ok(page(StatusCode::OK, &done))
        }
        // The reason is the one field of the form: its error goes next to it.
        Err(e @ ServiceError::Invalid { field: "reason", .. }) => {
            let e = ApiError::from(e);
            let a = pending(&state, &ctx, id).await?;
            let message = if f.reason.trim().is_empty() {
                "却下の理由を入力してください（申請者に表示されます）。".to_string()
            } else {
                e.message_ja()
            };
            let form = RejectPage { ctx: &ctx, id, facts: who(&a), reason: f.reason, error: Some(message) };
            Ok(page(e.status(), &form))
        }
        Err(e) => Err(e.into()),
    }
}
