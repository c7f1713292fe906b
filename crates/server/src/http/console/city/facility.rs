//! One facility as the city sees it, linked from 施設一覧 and from an
//! approved application: its state, kind, 担当課 and address; its managers,
//! with 登録コードを発行する for a slip that expired in the post (福祉課 and
//! 行政管理課); for 行政管理課 every person with their devices, and 異動 to
//! another facility.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{get, post};
use connect_pki_domain::{FacilityId, FacilityStatus, Role, UserId};
use serde::Deserialize;

use super::{facility_status_ja, kind_ja};
use crate::http::console::kit::{Acting, Ctx, Fact, NoFields, Page, PageResult, ResultPage, local, page, section};
use crate::http::console::manager::{SlipPage, UserRow as PersonRow, person};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{facilities, users};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/facilities/{id}", get(show))
        .route("/console/facilities/{id}/managers/{user}/code", post(reissue))
        .route("/console/facilities/{id}/managers", post(appoint))
        .route("/console/people/{user}/transfer", post(transfer))
        .route("/console/facilities/{id}/lifetimes", post(set_lifetimes))
}

#[derive(Template)]
#[template(path = "console/facility.html")]
struct FacilityPage<'a> {
    ctx: &'a Ctx,
    id: i64,
    name: String,
    facts: Vec<Fact>,
    managers: Vec<PersonRow>,
    /// Everyone else (行政管理課 only).
    staff: Vec<PersonRow>,
    /// Where people may move (行政管理課 only): (id, name).
    elsewhere: Vec<(i64, String)>,
    approved: bool,
    city_admin: bool,
    /// The facility's own days (by hand, managed), empty where the service's apply.
    own_days: (String, String),
}

fn number(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| ApiError::NoRoute(raw.to_string()))
}

async fn show(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Facilities>,
    Path(raw): Path<String>,
) -> PageResult {
    let id = FacilityId(number(&raw)?);
    let requester = &ctx.caller.requester;
    let f = facilities::facility(&state, requester, id).await?;
    let people = facilities::people(&state, requester, id).await?;
    let city_admin = ctx.role() == Role::AdminDivision;
    let elsewhere = if city_admin {
        let all = facilities::facilities(&state, requester).await?;
        all.into_iter()
            .filter(|g| g.id != id && g.status == FacilityStatus::Approved)
            .map(|g| (g.id.0, g.name))
            .collect()
    } else {
        Vec::new()
    };
    let (managers, staff): (Vec<_>, Vec<_>) = people.iter().partition(|u| u.user.role == Role::FacilityManager);
    let row = |u: &&connect_pki_store::UserWithDevices| PersonRow::of(&u.user, &u.devices, None);
    let facts = vec![
        ("状態", facility_status_ja(f.status).to_string()),
        ("種別", kind_ja(f.kind).to_string()),
        ("所在地", f.address.clone()),
        (
            "担当課",
            f.department.as_deref().filter(|d| !d.is_empty()).map_or_else(
                || "（未登録）".to_string(),
                |d| state.settings.department(d).map_or_else(|| d.to_string(), |known| known.named()),
            ),
        ),
    ];
    let own = facilities::lifetimes(&state, requester, id).await?;
    let mut facts = facts;
    facts.push(("証明書の有効期間", lifetimes_ja(&state, own)));
    facts.push(("失効が届かない最大時間", exposure_ja(&state, own)));
    let shown = |d: Option<u32>| d.map(|d| d.to_string()).unwrap_or_default();
    let p = FacilityPage {
        ctx: &ctx,
        id: id.0,
        own_days: (shown(own.by_hand_days), shown(own.managed_days)),
        facts,
        managers: managers.iter().map(row).collect(),
        staff: staff.iter().map(row).collect(),
        elsewhere,
        approved: f.status == FacilityStatus::Approved,
        city_admin,
        name: f.name,
    };
    Ok(page(StatusCode::OK, &p))
}

/// What lives how long at this facility, and whose setting it is.
fn lifetimes_ja(state: &AppState, own: connect_pki_domain::lifetime::FacilityLifetimes) -> String {
    let service = state.settings.lifetimes;
    let whose = |d: Option<u32>| if d.is_some() { "この施設の設定" } else { "全体の設定" };
    format!(
        "手作業で取り込んだ端末 {} 日（{}）、端末管理システムが自動で更新する端末 {} 日（{}）",
        service.days(own, false),
        whose(own.by_hand_days),
        service.days(own, true),
        whose(own.managed_days)
    )
}

/// The worst exposure the lifetimes imply: a relying party that keeps the
/// CRL (or an OCSP answer) as long as it is valid can accept a revoked
/// certificate that long, unless the certificate runs out first.
fn exposure_ja(state: &AppState, own: connect_pki_domain::lifetime::FacilityLifetimes) -> String {
    use connect_pki_domain::lifetime::{Validity, worst_exposure};
    let validity = Validity { ocsp: state.ocsp.validity(), crl: state.revocations.crl_validity() };
    let worst = |managed| worst_exposure(state.settings.lifetimes.of(own, managed), validity);
    let hours = |d: time::Duration| {
        let h = d.whole_minutes() as f64 / 60.0;
        if h.fract() == 0.0 { format!("{h:.0} 時間") } else { format!("{h:.1} 時間") }
    };
    format!(
        "手作業で取り込んだ端末 {}、端末管理システムの端末 {}（CRL を有効期限まで保存して使う接続先が、失効した証明書を受け入れ続けうる最長の時間。OCSP で毎回確かめる接続先には直ちに届きます）",
        hours(worst(false)),
        hours(worst(true))
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct LifetimesForm {
    #[serde(default)]
    by_hand_days: String,
    #[serde(default)]
    managed_days: String,
}

/// 行政管理課 sets the facility's lifetimes; an empty field returns that
/// channel to the service's.
async fn set_lifetimes(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Acting { caller, form }: Acting<LifetimesForm>,
) -> PageResult {
    let id = FacilityId(number(&raw)?);
    let days = |field: &'static str, v: &str| -> Result<Option<i64>, ApiError> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::from(connect_pki_domain::DomainError::Invalid { field, why: "enter a number of days".into() })
        })
    };
    let (by_hand, managed) = (days("by_hand_days", &form.by_hand_days)?, days("managed_days", &form.managed_days)?);
    let own = facilities::set_lifetimes(&state, &caller.requester, id, by_hand, managed).await?;
    let f = facilities::facility(&state, &caller.requester, id).await?;
    let ctx = Ctx::new(&state, caller, "/console/facilities");
    let facts = vec![
        ("施設", f.name.clone()),
        ("証明書の有効期間", lifetimes_ja(&state, own)),
        ("日時", local(state.clock.now())),
    ];
    let message = "証明書の有効期間を変更しました。各端末の次の証明書（登録・更新）から適用されます。".to_string();
    let p = ResultPage {
        ctx: &ctx,
        title: "有効期間を変更しました",
        message,
        facts,
        back: format!("/console/facilities/{id}"),
    };
    Ok(page(StatusCode::OK, &p))
}

/// A manager's code on the slip the city mails.
struct Mailed {
    facility: (FacilityId, String),
    person: String,
    code: String,
    expires_at: time::OffsetDateTime,
}

fn mailed_slip(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    caller: crate::http::identity::Caller,
    m: Mailed,
    status: StatusCode,
) -> PageResult {
    let (install_url, qr, enroll_url) = SlipPage::addresses(state, headers, uri)?;
    let ctx = Ctx::new(state, caller, "/console/facilities");
    let p = SlipPage {
        ctx: &ctx,
        back: (format!("/console/facilities/{}", m.facility.0), "施設のページへ戻る"),
        reissue: "福祉課または行政管理課に再発行を依頼してください",
        delivery: "施設管理者に郵送または手渡ししてください",
        person: m.person,
        facility: m.facility.1,
        code: m.code,
        expires: local(m.expires_at),
        issued: local(state.clock.now()),
        enroll_url,
        install_url,
        qr,
    };
    Ok(page(status, &p))
}

/// 登録コードを発行する for a manager: a slip the city mails.
async fn reissue(
    State(state): State<AppState>,
    Path((raw, user)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Acting { caller, .. }: Acting<NoFields>,
) -> PageResult {
    let (id, user) = (FacilityId(number(&raw)?), UserId(number(&user)?));
    let requester = &caller.requester;
    let f = facilities::facility(&state, requester, id).await?;
    let (code, expires_at) = facilities::reissue_manager_code(&state, requester, id, user).await?;
    let manager = state.store.user(user).await.map_err(|e| ApiError::from(connect_pki_ra::ServiceError::from(e)))?;
    let person = manager.as_ref().map(person).unwrap_or_default();
    let slip = Mailed { facility: (id, f.name), person, code, expires_at };
    mailed_slip(&state, &headers, &uri, caller, slip, StatusCode::OK)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ManagerForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    login_id: String,
    #[serde(default)]
    email: String,
}

/// 施設管理者を登録する (行政管理課): a successor for a facility whose
/// manager leaves, with the slip of their code to mail.
async fn appoint(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Acting { caller, form }: Acting<ManagerForm>,
) -> PageResult {
    let id = FacilityId(number(&raw)?);
    let requester = &caller.requester;
    let f = facilities::facility(&state, requester, id).await?;
    let r = users::Registration {
        display_name: form.display_name,
        login_id: form.login_id,
        email: form.email,
        role: Role::FacilityManager,
    };
    let manager = users::register(&state, requester, id, r).await?;
    let (code, expires_at) = facilities::reissue_manager_code(&state, requester, id, manager.id).await?;
    let slip = Mailed { facility: (id, f.name), person: person(&manager), code, expires_at };
    mailed_slip(&state, &headers, &uri, caller, slip, StatusCode::CREATED)
}

#[derive(Debug, Deserialize)]
pub(crate) struct TransferForm {
    #[serde(default)]
    to: String,
}

/// 異動: the person moves to the facility chosen; their certificates are
/// revoked before the page answers.
async fn transfer(
    State(state): State<AppState>,
    Path(user): Path<String>,
    Acting { caller, form }: Acting<TransferForm>,
) -> PageResult {
    let user = UserId(number(&user)?);
    let to = FacilityId(form.to.trim().parse::<i64>().map_err(|_| {
        ApiError::from(connect_pki_domain::DomainError::Invalid {
            field: "facility_id",
            why: "choose a facility".into(),
        })
    })?);
    let requester = &caller.requester;
    let before = users::managed_user(&state, requester, user).await?;
    let revoked = users::transfer(&state, requester, user, to).await?;
    let target = facilities::facility(&state, requester, to).await?;
    let ctx = Ctx::new(&state, caller, "/console/facilities");
    let facts = vec![
        ("職員", person(&before)),
        ("異動先", target.name.clone()),
        ("失効した証明書", format!("{} 件", revoked.len())),
        ("日時", local(state.clock.now())),
    ];
    let message = format!(
        "{} さんを「{}」へ異動しました。これまでの端末の証明書は失効し、電子@連絡帳に接続できなくなりました。ログインIDとパスワードはそのまま使えます。新しい端末は、異動先の施設管理者が発行する登録コードで登録します。",
        person(&before),
        target.name
    );
    let p = ResultPage {
        ctx: &ctx, title: "異動しました", message, facts, back: format!("/console/facilities/{to}")
    };
    Ok(page(StatusCode::OK, &p))
}
