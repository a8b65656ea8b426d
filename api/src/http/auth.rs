//! Authentication: the admin and gate bearer tokens, checked before anything else.
//!
//! Which route needs which token is read from the OpenAPI document's `security`
//! lines ([`Gatekeeper::from_document`]), so the document and the check cannot
//! disagree. [`authenticate`] runs as a layer outside the body limit and the
//! `Idempotency-Key` layer: a request without a valid token is refused (401, or 403
//! while that token is not configured) before its body is read or validated, and
//! that refusal is never stored as the key's answer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::app::Shared;
use crate::http::error::ApiError;

/// The security scheme names of the OpenAPI document.
pub const ADMIN_SCHEME: &str = "admin_token";
pub const GATE_SCHEME: &str = "gate_token";
pub const SALES_SCHEME: &str = "sales_token";

/// Whose token a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Gate,
    /// A sales channel confirming on trust (box office, an integrator charging
    /// elsewhere); not needed when `payments.provider = "external"`.
    Sales,
}

/// The token each secured route needs, by route template, and the tokens to check.
#[derive(Clone)]
pub struct Gatekeeper {
    shared: Arc<Shared>,
    required: Arc<HashMap<String, Vec<(Method, Role)>>>,
}

impl Gatekeeper {
    /// Reads every operation's `security` from the document: an operation whose
    /// every alternative names the admin (gate) scheme needs the admin (gate) token.
    pub fn from_document(shared: Arc<Shared>, document: &serde_json::Value) -> Gatekeeper {
        let mut required: HashMap<String, Vec<(Method, Role)>> = HashMap::new();
        let paths = document["paths"].as_object().into_iter().flatten();
        for (path, operations) in paths {
            for (method, operation) in operations.as_object().into_iter().flatten() {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else { continue };
                if let Some(role) = operation.get("security").and_then(required_role) {
                    required.entry(path.clone()).or_default().push((method, role));
                }
            }
        }
        Gatekeeper { shared, required: Arc::new(required) }
    }

    /// The token `method` on the route template `route` needs, if any.
    pub fn role(&self, method: &Method, route: &str) -> Option<Role> {
        let operations = self.required.get(route)?;
        operations.iter().find(|(known, _)| known == method).map(|(_, role)| *role)
    }
}

/// The role every alternative of an OpenAPI `security` list demands; none if any
/// alternative is empty (anonymous allowed) or they disagree.
fn required_role(security: &serde_json::Value) -> Option<Role> {
    let mut roles = security.as_array()?.iter().map(|alternative| {
        let schemes = alternative.as_object()?;
        match (
            schemes.contains_key(ADMIN_SCHEME),
            schemes.contains_key(GATE_SCHEME),
            schemes.contains_key(SALES_SCHEME),
        ) {
            (true, false, false) => Some(Role::Admin),
            (false, true, false) => Some(Role::Gate),
            (false, false, true) => Some(Role::Sales),
            _ => None,
        }
    });
    let first = roles.next()??;
    roles.all(|role| role == Some(first)).then_some(first)
}

/// Refuses a request to a secured route that lacks its token, before any other
/// layer or extractor looks at the request.
pub async fn authenticate(State(gatekeeper): State<Gatekeeper>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>();
    let role = route.and_then(|route| gatekeeper.role(request.method(), route.as_str()));
    let checked = match role {
        None => Ok(()),
        Some(Role::Admin) => require_admin(&gatekeeper.shared, request.headers()),
        Some(Role::Gate) => require_gate(&gatekeeper.shared, request.headers()),
        // Without a PSP, holds are sold only on trust: whoever integrates hakken
        // charges elsewhere and guards the route itself.
        Some(Role::Sales) if gatekeeper.shared.payments.is_none() => Ok(()),
        Some(Role::Sales) => require_sales(&gatekeeper.shared, request.headers()),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// Checks `Authorization: Bearer <admin token>` (in constant time).
pub fn require_admin(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    require_bearer(&shared.admin_token, headers, "admin", "admin_disabled", "HAKKEN_ADMIN_TOKEN")
}

/// Checks `Authorization: Bearer <gate token>` (in constant time).
pub fn require_gate(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    require_bearer(&shared.gate_token, headers, "gate", "gates_disabled", "HAKKEN_GATE_TOKEN")
}

/// Checks `Authorization: Bearer <sales token>` (in constant time).
pub fn require_sales(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    require_bearer(&shared.sales_token, headers, "sales", "sales_disabled", "HAKKEN_SALES_TOKEN")
}

/// Checks a bearer token; an empty configured token turns the endpoints off (403).
fn require_bearer(
    token: &str,
    headers: &HeaderMap,
    role: &str,
    disabled_code: &'static str,
    variable: &str,
) -> Result<(), ApiError> {
    if token.is_empty() {
        let message = format!("{role} endpoints are off: no {role} token is configured ({variable})");
        return Err(ApiError::new(StatusCode::FORBIDDEN, disabled_code, message));
    }
    let given =
        headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => Err(ApiError::unauthorized(format!("this endpoint needs `Authorization: Bearer <{role} token>`"))),
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(format!("the {role} token is wrong"))),
    }
}

/// Whether the request carries the admin token (without refusing it if not).
pub fn is_admin(shared: &Shared, headers: &HeaderMap) -> bool {
    !shared.admin_token.is_empty() && require_admin(shared, headers).is_ok()
}

pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tokens_compare_in_constant_time_and_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn the_role_is_the_one_every_alternative_demands() {
        assert_eq!(required_role(&json!([{ "admin_token": [] }])), Some(Role::Admin));
        assert_eq!(required_role(&json!([{ "gate_token": [] }])), Some(Role::Gate));
        assert_eq!(required_role(&json!([{ "sales_token": [] }])), Some(Role::Sales));
        assert_eq!(required_role(&json!([{ "admin_token": [] }, {}])), None, "anonymous allowed");
        assert_eq!(required_role(&json!([{ "admin_token": [] }, { "gate_token": [] }])), None);
        assert_eq!(required_role(&json!([])), None);
    }
}
