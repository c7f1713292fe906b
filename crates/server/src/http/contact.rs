//! 行政管理課's number on every page that says to call it.
//!
//! Pages, console pages and the Japanese error messages all send a person
//! to the phone with the same words (`ra::settings::CALL_THE_CITY`). Giving
//! them the number here, once for every page and message, is what keeps a
//! page added later from saying 「電話してください」 with no number to dial
//! (a night-time loss was exactly that wall).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use connect_pki_ra::settings::CityDesk;

/// Gives every 「行政管理課へ電話」 of an HTML or plain-text answer the number
/// and hours of 行政管理課 (when they are configured).
pub(crate) async fn fill(State(desk): State<Arc<CityDesk>>, req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let text = r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("text/html") || t.starts_with("text/plain")
    });
    if desk.phone.is_none() || !text {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    // A page is rendered in memory before it is sent; nothing streams here.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "a page could not be read back to add the city's number");
            return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let Ok(page) = std::str::from_utf8(&bytes) else { return Response::from_parts(parts, Body::from(bytes)) };
    let filled = desk.fill(page).into_owned();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(filled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn body_of(app: Router, path: &str) -> String {
        let r = app.oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("answer");
        String::from_utf8(axum::body::to_bytes(r.into_body(), 1 << 20).await.expect("body").to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn pages_and_messages_get_the_number_and_nothing_else_changes() {
        let desk = Arc::new(CityDesk::new(Some("03-1234-5678".into()), Some("平日 8:30〜17:15".into())).expect("desk"));
        let app = Router::new()
            .route(
                "/page",
                get(|| async {
                    axum::response::Html("<p>至急の場合は行政管理課へ電話してください。</p>")
                }),
            )
            .route("/text", get(|| async { "行政管理課へ電話してください" }))
            .route("/json", get(|| async { axum::Json(serde_json::json!({"m": "行政管理課へ電話"})) }))
            .layer(axum::middleware::from_fn_with_state(desk, fill));
        let number = "行政管理課（電話 03-1234-5678、平日 8:30〜17:15）へ電話";
        assert!(body_of(app.clone(), "/page").await.contains(number));
        assert!(body_of(app.clone(), "/text").await.contains(number));
        assert_eq!(body_of(app, "/json").await, r#"{"m":"行政管理課へ電話"}"#, "JSON is the API's, left as it is");
    }
}
