//! A panic in a handler or an inner layer becomes the API's JSON error instead of a
//! dropped connection.
//!
//! Without this layer the panic unwinds out of hyper's connection task: the client sees
//! the connection reset (and retries blind), the route metrics never see the request.
//! With it the client gets 503 `internal` with `Retry-After` (as a request with an
//! `Idempotency-Key` already did: its handler runs in a task of its own, whose panic
//! is a join error), and the request is counted and logged under its route with status
//! 503 by the route metrics layer outside this one. The panic message itself goes to
//! stderr through the panic hook, as any panic's does; it is not repeated in the log
//! line, so a value formatted into it stays out of the log.
//!
//! Nothing is allocated per request: the inner future is pinned on this one's stack.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

pub async fn catch_panic(request: Request, next: Next) -> Response {
    let inner = std::pin::pin!(next.run(request));
    match (CatchUnwind { inner }).await {
        Ok(response) => response,
        Err(()) => {
            tracing::error!("a request's handler panicked; answered 503 internal");
            ApiError::unavailable("internal", "the request failed", 1).into_response()
        }
    }
}

/// Polls `inner`, turning a panic inside a poll into `Err(())`; the future is dropped
/// with what it held (its guards release their slots as on any unwind). A mutex held
/// across the panic stays poisoned and its later users panic too: this layer does not
/// repair state, it only keeps each such request an answer rather than a reset.
struct CatchUnwind<'a, F> {
    inner: Pin<&'a mut F>,
}

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    async fn panics() -> &'static str {
        tokio::task::yield_now().await;
        panic!("a bug in a handler");
    }

    async fn answers() -> &'static str {
        "fine"
    }

    fn router() -> Router {
        Router::new()
            .route("/panics", get(panics))
            .route("/answers", get(answers))
            .layer(axum::middleware::from_fn(catch_panic))
    }

    async fn call(router: Router, path: &str) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = router.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or(serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, retry_after, body)
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_the_json_error_after_its_first_await() {
        let (status, retry_after, body) = call(router(), "/panics").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["error"]["code"], "internal");
    }

    #[tokio::test]
    async fn an_answer_passes_unchanged_and_the_router_serves_on_after_a_panic() {
        let router = router();
        assert_eq!(call(router.clone(), "/panics").await.0, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _, body) = call(router, "/answers").await;
        assert_eq!((status, body), (StatusCode::OK, serde_json::Value::String("fine".into())));
    }
}
