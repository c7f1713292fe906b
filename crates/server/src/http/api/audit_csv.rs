//! The audit log as CSV: the API's (`GET /api/v1/audit?format=csv`), in the
//! record's own words for programs, and the attachment and table writer the
//! console's download uses for its Japanese one (`console::city::audit`).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use connect_pki_store::AuditRecord;

use super::views::AuditView;
use crate::http::error::ApiError;

const COLUMNS: [&str; 10] =
    ["id", "at", "actor", "action", "target", "outcome", "detail", "facility_id", "user_id", "hash"];

/// `records` as a CSV attachment named `filename`.
pub(crate) fn response(records: Vec<AuditRecord>, filename: &str) -> Result<Response, ApiError> {
    let rows: Vec<AuditView> = records.into_iter().map(Into::into).collect();
    Ok(attachment(write(&rows)?, filename))
}

/// `body` as a CSV attachment named `filename`.
pub(crate) fn attachment(body: Vec<u8>, filename: &str) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    // Personal data: kept out of caches, never sniffed into something else.
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CACHE_CONTROL, "no-store".to_string()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    (headers, body).into_response()
}

/// A CSV table: `header`, then `rows`, after `prefix` (a byte-order mark,
/// for Excel).
pub(crate) fn table(
    prefix: &[u8],
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(prefix.to_vec());
    w.write_record(header).map_err(|e| anyhow::anyhow!(e))?;
    for r in rows {
        w.write_record(r).map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(w.into_inner().map_err(|e| anyhow::anyhow!(e.to_string()))?)
}

fn write(rows: &[AuditView]) -> Result<Vec<u8>, ApiError> {
    table(
        b"",
        &COLUMNS,
        rows.iter().map(|r| {
            vec![
                r.id.to_string(),
                r.at.clone(),
                r.actor.clone(),
                r.action.to_string(),
                r.target.clone(),
                r.outcome.clone(),
                r.detail.to_string(),
                r.facility_id.map(|f| f.to_string()).unwrap_or_default(),
                r.user_id.map(|u| u.to_string()).unwrap_or_default(),
                r.hash.clone(),
            ]
        }),
    )
}
