//! Registering a member of staff (or another manager) of the caller's
//! facility. A refused field is named next to it, in Japanese, with what
//! was typed kept.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use connect_pki_domain::Role;
use connect_pki_store::Conflict as StoreConflict;
use serde::Deserialize;

use super::REGISTRABLE;
use crate::http::console::kit::Acting;
use crate::http::console::kit::Page;
use crate::http::console::kit::section;
use crate::http::console::kit::{Ctx, PageResult, Refusal, page, role_ja};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use connect_pki_ra::{Conflict, ServiceError, facilities, users};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Fields {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    login_id: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

#[derive(Template)]
#[template(path = "console/register.html")]
struct RegisterPage<'a> {
    ctx: &'a Ctx,
    facility: String,
    f: Fields,
    roles: Vec<(&'static str, &'static str)>,
    /// (field, message): the refused field and why; field "" is the form.
    error: Option<(&'static str, String)>,
}

impl RegisterPage<'_> {
    /// The message for `field`, if it is the one refused.
    fn err(&self, field: &str) -> Option<&str> {
        self.error.as_ref().filter(|(f, _)| *f == field).map(|(_, m)| m.as_str())
    }
}

fn roles() -> Vec<(&'static str, &'static str)> {
    REGISTRABLE.iter().map(|r| (r.as_str(), role_ja(*r))).collect()
}

pub(crate) async fn form(State(state): State<AppState>, Page { ctx, .. }: Page<section::Staff>) -> PageResult {
    let requester = &ctx.caller.requester;
    let facility = facilities::managed_facility(&state, requester, requester.actor.facility).await.map(|f| f.name)?;
    let f = Fields { role: Role::Staff.as_str().into(), ..Fields::default() };
    Ok(page(StatusCode::OK, &RegisterPage { ctx: &ctx, facility, f, roles: roles(), error: None }))
}

/// Which field a refusal is about, and what to tell the manager.
fn field_error(e: &ApiError) -> (&'static str, String) {
    let field = match e {
        ApiError::Service(ServiceError::Invalid { field, .. }) => match *field {
            "display_name" => "display_name",
            "login_id" => "login_id",
            "email" => "email",
            "role" => "role",
            _ => "",
        },
        ApiError::Service(ServiceError::Conflict(Conflict::Record(StoreConflict::LoginIdTaken { .. }))) => "login_id",
        _ => "",
    };
    (field, e.message_ja())
}

pub(crate) async fn submit(State(state): State<AppState>, Acting { caller, form: f }: Acting<Fields>) -> PageResult {
    let result: Result<_, ApiError> = async {
        let role: Role = f.role.parse()?;
        let r = users::Registration {
            display_name: f.display_name.clone(),
            login_id: f.login_id.clone(),
            email: f.email.clone(),
            role,
        };
        Ok(users::register(&state, &caller.requester, caller.requester.actor.facility, r).await?)
    }
    .await;
    match result {
        Ok(user) => Ok(Redirect::to(&format!("/console/staff/{}?done=registered", user.id)).into_response()),
        Err(e) => {
            let facility =
                match facilities::managed_facility(&state, &caller.requester, caller.requester.actor.facility).await {
                    Ok(f) => f.name,
                    Err(_) => return Err(Refusal::from(e)),
                };
            let ctx = Ctx::new(&state, caller, "/console/staff");
            let p = RegisterPage { ctx: &ctx, facility, f, roles: roles(), error: Some(field_error(&e)) };
            Ok(page(e.status(), &p))
        }
    }
}
