//! A minimal HTTP/1.1 server, to measure the driver itself (`serve-trivial`) and to
//! stand in for hakken in tests.
//!
//! It answers every request from a [`Handler`], a plain function of the method and
//! path, after reading the request body (so keep-alive works). By default that is 200
//! `{}`: as little server work as possible, so a run against it shows what the driver
//! can do.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Decides the reply to a request: status and JSON body.
pub type Handler = Arc<dyn Fn(&Method, &str) -> (StatusCode, Bytes) + Send + Sync>;

/// Decides the reply to a request from its method, path with query, and body: for
/// stand-ins that keep state (a fake hakken and PSP in the payment tests).
pub type RequestHandler = Arc<dyn Fn(&Method, &str, &[u8]) -> (StatusCode, Bytes) + Send + Sync>;

/// 200 `{}` to everything.
pub fn empty_json() -> Handler {
    Arc::new(|_, _| (StatusCode::OK, Bytes::from_static(b"{}")))
}

/// Accepts connections on `listener` forever, serving each from `handler`.
pub async fn serve(listener: TcpListener, handler: Handler) -> std::io::Result<()> {
    serve_requests(
        listener,
        Arc::new(move |method: &Method, path: &str, _: &[u8]| {
            handler(method, path.split_once('?').map_or(path, |(path, _)| path))
        }),
    )
    .await
}

/// [`serve`] with a handler that also sees the query and the body.
pub async fn serve_requests(listener: TcpListener, handler: RequestHandler) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(handler.clone(), request));
            // A client that goes away mid-request is no concern of a test server.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(handler: RequestHandler, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // Read the whole body so the connection can carry the next request.
    let Ok(body) = body.collect().await else {
        return Ok(reply(StatusCode::BAD_REQUEST, Bytes::from_static(b"{}")));
    };
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |path| path.as_str());
    let (status, body) = handler(&parts.method, path, &body.to_bytes());
    Ok(reply(status, body))
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
