//! Changing a person's name, e-mail address or role (職員 ↔ 施設管理者),
//! by whoever may register them; a refused field is named next to it. The
//! facility's last active manager keeps the role (`domain::user`).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use connect_pki_domain::{Role, UserId};
use serde::Deserialize;

use super::{REGISTRABLE, person};
use crate::http::console::kit::{
    Acting, ConfirmPage, Ctx, NoFields, Numbered, Page, PageResult, ResultPage, local, page, role_ja, section,
};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{ServiceError, users};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Fields {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

#[derive(Template)]
#[template(path = "console/edit.html")]
struct EditPage<'a> {
    ctx: &'a Ctx,
    user_id: i64,
    person: String,
    f: Fields,
    roles: Vec<(&'static str, &'static str)>,
    /// (field, message); field "" is the form.
    error: Option<(&'static str, String)>,
}

impl EditPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.error.as_ref().filter(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

fn roles() -> Vec<(&'static str, &'static str)> {
    REGISTRABLE.iter().map(|r| (r.as_str(), role_ja(*r))).collect()
}

pub(crate) async fn form(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Numbered(id): Numbered,
) -> PageResult {
    let u = users::managed_user(&state, &ctx.caller.requester, UserId(id)).await.map_err(ApiError::from)?;
    let f = Fields {
        display_name: u.display_name.clone().unwrap_or_default(),
        email: u.email.clone().unwrap_or_default(),
        role: u.role.as_str().into(),
    };
    let p = EditPage { ctx: &ctx, user_id: id, person: person(&u), f, roles: roles(), error: None };
    Ok(page(StatusCode::OK, &p))
}

fn field_of(e: &ApiError) -> &'static str {
    match e {
        ApiError::Service(ServiceError::Invalid { field: f @ ("display_name" | "email" | "role"), .. }) => f,
        _ => "",
    }
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Numbered(id): Numbered,
    Acting { caller, form: f }: Acting<Fields>,
) -> PageResult {
    let result: Result<_, ApiError> = async {
        let role: Role = f.role.parse()?;
        let edit =
            users::Edit { display_name: Some(f.display_name.clone()), email: Some(f.email.clone()), role: Some(role) };
        Ok(users::edit(&state, &caller.requester, UserId(id), edit).await?)
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/console/staff/{id}?done=edited")).into_response()),
        Err(e) => {
            let u = users::managed_user(&state, &caller.requester, UserId(id)).await.map_err(ApiError::from)?;
            let ctx = Ctx::new(&state, caller, "/console/staff");
            let error = Some((field_of(&e), e.message_ja()));
            let p = EditPage { ctx: &ctx, user_id: id, person: person(&u), f, roles: roles(), error };
            Ok(page(e.status(), &p))
        }
    }
}

/// 緊急届出のパスワードを再設定する: what it does, then the button.
pub(crate) async fn confirm_password(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<section::Staff>,
    Numbered(id): Numbered,
) -> PageResult {
    let u = users::managed_user(&state, &ctx.caller.requester, UserId(id)).await.map_err(ApiError::from)?;
    let p = ConfirmPage {
        ctx: &ctx,
        title: "緊急届出のパスワードの再設定",
        facts: vec![("職員", person(&u))],
        effect: "新しいパスワードを作り、この次の画面に一度だけ表示します。これまでのパスワードは使えなくなります。このパスワードは端末をなくしたときの緊急届出のページでだけ使い、電子@連絡帳のパスワードではありません。".into(),
        action: format!("/console/staff/{id}/password"),
        fields: Vec::new(),
        button: "パスワードを再設定する",
        back: format!("/console/staff/{id}"),
    };
    Ok(page(StatusCode::OK, &p))
}

pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Numbered(id): Numbered,
    Acting { caller, .. }: Acting<NoFields>,
) -> PageResult {
    let u = users::managed_user(&state, &caller.requester, UserId(id)).await.map_err(ApiError::from)?;
    let password = users::reset_password(&state, &caller.requester, UserId(id)).await.map_err(ApiError::from)?;
    let ctx = Ctx::new(&state, caller, "/console/staff");
    let message = format!(
        "{} さんの緊急届出のパスワードを再設定しました。次のパスワードを本人に伝えてください。この画面を閉じると二度と表示されません。",
        person(&u)
    );
    let facts = vec![("職員", person(&u)), ("新しいパスワード", password), ("日時", local(state.clock.now()))];
    Ok(page(
        StatusCode::OK,
        &ResultPage {
            ctx: &ctx,
            title: "パスワードを再設定しました",
            message,
            facts,
            back: format!("/console/staff/{id}"),
        },
    ))
}
