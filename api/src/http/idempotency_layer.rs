//! `Idempotency-Key` on every POST: a retry with the same key gets the first answer
//! again and never makes a second hold or order.
//!
//! The first request with a key runs in a task of its own, so it finishes (and its
//! answer is stored) even if the client hangs up or the request times out. Answers
//! are stored durably (through the store's group commit) for `idempotency_ttl_s`,
//! keyed by path and key, with a fingerprint of the body: the same key with another
//! body is refused (422), a retry while the first is still running gets 409 + Retry-After.
//! Answers that say "try again" (429, 5xx) are not stored, so a retry runs again.
//!
//! The answer to a change is stored in the same WAL batch as the change: the
//! middleware hands the request's [`Slot`] to the handler (a request extension), the
//! handler passes it into the section call with the pure function that renders the
//! answer ([`call_changing`]), and the actor writes the rendered answer with the call's
//! records. A crash thus loses both or neither, and a retry never makes a second hold
//! or order. The response then says (an extension) that its answer is durable; answers
//! of requests that changed nothing are stored by the middleware afterwards.
//! Where and how answers are stored is [`super::idempotency`]'s. Stored bodies are
//! sealed ([`crate::privacy`]); a replay opens them and leaves out a buyer erased since.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hakken_engine::actor::{
    AnswerSlot, Answered, Call, ReadOrder, SectionActor, SectionCall, SectionHandle, Unavailable,
};
use hakken_engine::ids::OrderId;
use hakken_engine::tickets::Viewer;
use hakken_engine::wal::IdempotentAnswer;
use serde::Serialize;
use serde_json::Value;

use crate::http::admission;
use crate::http::app::{call, unavailable, App, Shared};
use crate::http::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use crate::http::idempotency::{fingerprint, replayable, Slot};
use crate::http::overload::Overload;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotency-replayed";
const KEY_BYTES_MAX: usize = 255;

/// The request's [`Slot`] if it has an `Idempotency-Key` (an extractor; never refuses).
pub struct AnswerTo(pub Option<Slot>);

impl<S: Send + Sync> FromRequestParts<S> for AnswerTo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(AnswerTo(parts.extensions.get::<Slot>().cloned()))
    }
}

/// On a response whose answer is already durable (stored with the change it answers).
#[derive(Clone, Copy, Debug)]
struct AnswerStored;

/// A handler's answer before it is sent: status and JSON body, or the error.
pub type Rendered<T> = ApiResult<(StatusCode, T)>;

/// Calls a section for a change and answers with `render` of its reply. With a `slot`,
/// the rendered answer is stored in the same WAL batch as the call's records (if it
/// makes any); `render` is pure, so the answer stored is the answer sent.
pub async fn call_changing<C, T>(
    section: &SectionHandle,
    call: C,
    slot: Option<Slot>,
    overload: &Overload,
    render: impl Fn(&C::Reply) -> Rendered<T> + Clone + Send + 'static,
) -> Response
where
    C: SectionCall,
    SectionActor: actix::Handler<Call<C>>,
    T: Serialize + 'static,
{
    match call_answered(section, call, slot, render.clone()).await {
        Ok(answered) => respond(render(&answered.reply), answered.answer_stored),
        Err(error) => unavailable(error, overload).into_response(),
    }
}

/// The section call of [`call_changing`], for a handler that goes on with the reply:
/// with a `slot`, `render` of the reply is stored with the call's records.
pub async fn call_answered<C, T>(
    section: &SectionHandle,
    call: C,
    slot: Option<Slot>,
    render: impl Fn(&C::Reply) -> Rendered<T> + Send + 'static,
) -> Result<Answered<C::Reply>, Unavailable>
where
    C: SectionCall,
    SectionActor: actix::Handler<Call<C>>,
    T: Serialize + 'static,
{
    let answer = slot.map(|slot| {
        let privacy = slot.privacy;
        AnswerSlot {
            key: slot.key,
            fingerprint: slot.fingerprint,
            expires_at_ms: slot.expires_at_ms,
            render: Box::new(move |reply: &C::Reply| {
                stored_form(&render(reply)).map(|(status, body)| (status, privacy.seal_answer(&body)))
            }),
        }
    });
    section.call_answering(call, answer).await
}

/// The response of a rendered answer; `stored` says it went to disk with its change
/// (the middleware then does not store it again).
pub fn respond<T: Serialize>(rendered: Rendered<T>, stored: bool) -> Response {
    let mut response = match rendered {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(error) => error.into_response(),
    };
    if stored {
        response.extensions_mut().insert(AnswerStored);
    }
    response
}

/// What is stored of a rendered answer: its status and the JSON body exactly as
/// `axum::Json` and [`ApiError`] write it; nothing for answers that say "try again".
fn stored_form<T: Serialize>(rendered: &Rendered<T>) -> Option<(u16, Vec<u8>)> {
    let (status, body) = match rendered {
        Ok((status, body)) => (*status, serde_json::to_vec(body)),
        Err(error) => {
            let detail =
                ErrorDetail { code: error.code, message: error.message.clone(), details: error.details.clone() };
            (error.status, serde_json::to_vec(&ErrorBody { error: detail }))
        }
    };
    match body {
        Ok(body) if replayable(status) => Some((status.as_u16(), body)),
        Ok(_) => None,
        Err(error) => {
            tracing::error!(%error, "an answer could not be rendered for storing");
            None
        }
    }
}

/// A stored answer as a replayed response (its body opened: it is stored sealed; and a
/// buyer erased since is not shown, see [`redact_erased`]). One that no configured key
/// opens is an error (503), never a miss: running the request again could make its
/// change twice.
async fn replay(answer: IdempotentAnswer, shared: &Shared, app: &App) -> Response {
    let body = match shared.privacy.open_answer(&answer.body) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(reason = error.reason(), "a stored answer cannot be opened; its retries get 503");
            let message = "the stored answer for this `Idempotency-Key` cannot be read now";
            return ApiError::unavailable("storage_unavailable", message, 5).into_response();
        }
    };
    let body = redact_erased(shared, app, body).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let has_body = !body.is_empty();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if has_body {
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// A stored answer about to be replayed, without the buyer's data if the order it names
/// (an order view's `order.id`, a ticket's `ticket.order`) has been erased since it was
/// stored: an erasure reaches the answers kept for retries too (they stay sealed on disk
/// until `idempotency_ttl_s` prunes them). Answers naming no order are left as they are.
/// If the order's section cannot be asked now, the buyer is left out all the same.
async fn redact_erased(shared: &Shared, app: &App, body: Vec<u8>) -> Vec<u8> {
    let Ok(mut answer) = serde_json::from_slice::<Value>(&body) else { return body };
    let named = answer["order"]["id"].as_str().or_else(|| answer["ticket"]["order"].as_str());
    let Some(order) = named.and_then(|id| id.parse::<OrderId>().ok()) else { return body };
    let catalogue = app.catalogue();
    let Some((served, index)) = catalogue.locate(order.section) else { return body };
    let read = ReadOrder { order, viewer: Viewer::Admin };
    let erased = match call(&served.sections[index], read, &shared.overload).await {
        Ok(found) => found.is_some_and(|order| order.buyer.is_erased()),
        Err(_) => true,
    };
    if !erased {
        return body;
    }
    if let Some(view) = answer.get_mut("order").filter(|view| view.is_object()) {
        view["buyer"] = Value::Null;
        view["buyer_erased"] = Value::Bool(true);
    }
    if let Some(ticket) = answer.get_mut("ticket").filter(|ticket| ticket.is_object()) {
        ticket["holder"] = Value::String(String::new());
    }
    serde_json::to_vec(&answer).unwrap_or(body)
}

pub async fn idempotent(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    match run_once(&shared, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run_once(shared: &Arc<Shared>, request: Request, next: Next) -> Result<Response, Response> {
    let header = request.headers().get(HEADER).expect("checked by the caller");
    let valid =
        !header.is_empty() && header.len() <= KEY_BYTES_MAX && header.as_bytes().iter().all(u8::is_ascii_graphic);
    if !valid {
        let message = format!("`Idempotency-Key` must be 1-{KEY_BYTES_MAX} visible ASCII characters");
        return Err(ApiError::bad_request("invalid_idempotency_key", message).into_response());
    }
    let app = shared.app().map_err(IntoResponse::into_response)?.clone();
    let mut key = request.uri().path().as_bytes().to_vec();
    key.push(b'\n');
    key.extend_from_slice(header.as_bytes());

    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, shared.http.body_bytes_max).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is too large").into_response()
    })?;
    let query = parts.uri.query().unwrap_or("").as_bytes();
    let fingerprint = fingerprint(&[parts.method.as_str().as_bytes(), parts.uri.path().as_bytes(), query, &body]);

    let task_app = app.clone();
    let task_shared = shared.clone();
    let mut request = Request::from_parts(parts, Body::from(body));
    // The first request runs to the end in its own task, whoever stops waiting for it
    // (within the request's deadline, which the task carries, as it carries the request's
    // in-flight slot: its PSP calls step out of the in-flight count as the request's would).
    let task = tokio::spawn(admission::carried(hakken_engine::deadline::carried(async move {
        let idempotency = &task_app.idempotency;
        let Some(_running) = idempotency.begin(&key) else {
            let message = "a request with this `Idempotency-Key` is still running; retry after the given seconds";
            return ApiError::conflict("idempotency_key_in_use", message).retry_after(1).into_response();
        };
        let now_ms = task_app.now().0;
        match idempotency.stored(&key, now_ms).await {
            Err(error) => return error.into_response(),
            Ok(Some(stored)) if stored.fingerprint != fingerprint => {
                let message = "this `Idempotency-Key` was used with another request; use a new key";
                return ApiError::invalid("idempotency_key_reused", message).into_response();
            }
            Ok(Some(stored)) => return replay(stored, &task_shared, &task_app).await,
            Ok(None) => {}
        }
        let expires_at_ms = idempotency.expires_at_ms(now_ms);
        let slot = Slot { key, fingerprint, expires_at_ms, privacy: task_shared.privacy.clone() };
        request.extensions_mut().insert(slot.clone());
        let response = next.run(request).await;
        if response.extensions().get::<AnswerStored>().is_some() || !replayable(response.status()) {
            return response;
        }
        let (parts, body) = response.into_parts();
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return ApiError::unavailable("internal", "the answer could not be read", 1).into_response();
        };
        idempotency.store(slot, parts.status, &body).await;
        Response::from_parts(parts, Body::from(body))
    })));
    task.await.map_err(|_| ApiError::unavailable("internal", "the request failed", 1).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_answers_are_the_json_sent() {
        let ok: Rendered<serde_json::Value> = Ok((StatusCode::CREATED, serde_json::json!({"a": 1})));
        assert_eq!(stored_form(&ok), Some((201, b"{\"a\":1}".to_vec())));
        let refused: Rendered<()> = Err(ApiError::conflict("sold_out", "sold out"));
        let (status, body) = stored_form(&refused).unwrap();
        assert_eq!(status, 409);
        assert_eq!(body, br#"{"error":{"code":"sold_out","message":"sold out"}}"#.to_vec());
        let busy: Rendered<()> = Err(ApiError::unavailable("section_busy", "busy", 1));
        assert_eq!(stored_form(&busy), None);
    }
}
