//! Cluster mode: a request for an event another node owns is answered `307 Temporary
//! Redirect` to the same path on the owner (method and body are kept by clients).
//!
//! Handlers refuse with a 503 `not_owner` that names the owner
//! ([`OwnerElsewhere`]); this layer, outside the idempotency layer, turns it into the
//! redirect. So a stored answer is never a redirect (a 503 is not replayed), and a
//! retry after a takeover is served by whoever owns the event then.

use axum::extract::Request;
use axum::http::header::{HeaderValue, LOCATION, RETRY_AFTER};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::http::error::OwnerElsewhere;

pub async fn redirect(request: Request, next: Next) -> Response {
    let path = request.uri().path_and_query().map_or_else(|| request.uri().path().to_string(), ToString::to_string);
    let mut response = next.run(request).await;
    let Some(OwnerElsewhere(address)) = response.extensions_mut().remove::<OwnerElsewhere>() else {
        return response;
    };
    let location = format!("{}{path}", address.trim_end_matches('/'));
    match HeaderValue::try_from(location) {
        Ok(location) => {
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            response.headers_mut().remove(RETRY_AFTER);
            response.headers_mut().insert(LOCATION, location);
            metrics::counter!(REDIRECTS_TOTAL).increment(1);
        }
        // An address no header can carry: the 503 stands (the lease named it; logged
        // once per answer, the address is configuration, not personal data).
        Err(_) => tracing::warn!(%address, "the owner's address cannot be a Location header"),
    }
    response
}

/// Requests answered with a redirect to another node (cluster mode).
pub const REDIRECTS_TOTAL: &str = "hakken_cluster_redirects_total";
