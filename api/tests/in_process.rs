//! The API in process: the real router, state and section actors on a temporary store,
//! driven with `oneshot` and a manual clock. No socket, no process, no real sleeping:
//! the pattern for handler tests. (Tests that need a process, such as kill -9,
//! start-up and signals, run the binary; see `support`.)

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use hakken_api::config::{Config, VenuesAndEvents};
use hakken_api::http::app::{App, CatalogueError, Shared, Tokens};
use hakken_engine::clock::Clock;
use hakken_engine::event::parse_instant;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "in-process-admin";
const GATE_TOKEN: &str = "in-process-gate";

/// In process there is no PSP (`Shared` without a gateway): holds are confirmed on trust.
fn tokens() -> Tokens {
    Tokens { admin: ADMIN_TOKEN.into(), gate: GATE_TOKEN.into(), sales: String::new() }
}
const EVENT: &str = "demo-2027";

/// One server's worth of state on a temporary store, with a manual clock.
struct InProcess {
    router: Router,
    clock: Clock,
    app: Arc<App>,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    body: Value,
    /// The body as text (HTML pages are not JSON).
    text: String,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl InProcess {
    /// The shipped configuration, its demo event half-way through its on-sale.
    async fn start() -> InProcess {
        InProcess::start_with(|_| {}).await.unwrap()
    }

    /// [`InProcess::start`] with the loaded venues and events changed by `edit` first;
    /// the error is `App::new`'s (an event that cannot be served).
    async fn start_with(edit: impl FnOnce(&mut VenuesAndEvents)) -> Result<InProcess, CatalogueError> {
        let dir = tempfile::tempdir().unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/hakken.toml");
        let env: Vec<(String, String)> = [
            ("HAKKEN_DATA_DIR", dir.path().join("data").display().to_string()),
            ("HAKKEN_ADMIN_TOKEN", ADMIN_TOKEN.into()),
            ("HAKKEN_GATE_TOKEN", GATE_TOKEN.into()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        let config = Config::load_with_env(&path, &env).unwrap();
        let mut loaded = config.load_venues_and_events().unwrap();
        edit(&mut loaded);
        let clock = Clock::manual(parse_instant("2026-06-01T12:00:00Z").unwrap());
        let http = config.http.clone();
        let privacy = Arc::new(hakken_api::privacy::Privacy::new(config.privacy.keyring().unwrap()));
        let shared = Arc::new(Shared::new(config.http.clone(), config.gates.clone(), tokens(), None, privacy));
        let registry_clock = clock.clone();
        // Recovery reads and syncs the store: off the async workers, as the server does.
        let registry =
            tokio::task::spawn_blocking(move || hakken_api::server::recover(&config, loaded, registry_clock))
                .await
                .unwrap()
                .unwrap();
        let app = Arc::new(App::new(registry, &http, None)?);
        shared.set_ready(app.clone());
        Ok(InProcess { router: hakken_api::http::router(shared), clock, app, _dir: dir })
    }

    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), text }
    }

    async fn get(&self, uri: &str) -> Answer {
        self.send(Method::GET, uri, &[], None).await
    }

    async fn post(&self, uri: &str, body: Value) -> Answer {
        self.send(Method::POST, uri, &[], Some(&body.to_string())).await
    }

    /// Stops the section actors and flushes the store before the directory goes.
    async fn finish(self) {
        let app = self.app.clone();
        tokio::task::spawn_blocking(move || app.shut_down()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_expires_when_the_one_clock_says_so() {
    let server = InProcess::start().await;
    let section = server.get(&format!("/v1/events/{EVENT}")).await.body["event"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|section| section["kind"] == "reserved")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = server
        .post(&format!("/v1/events/{EVENT}/holds"), json!({"customer": "ana", "section": section, "quantity": 2}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let hold = created.body["hold"]["id"].as_str().unwrap().to_owned();
    let seat = created.body["hold"]["seats"][0].as_str().unwrap().to_owned();
    let ttl_ms = created.body["hold"]["expires_at_ms"].as_u64().unwrap() - server.clock.now().0;
    let seat_state = |map: Value| {
        map["seats"].as_array().unwrap().iter().find(|view| view["id"] == seat.as_str()).unwrap()["state"].clone()
    };
    let seats_uri = format!("/v1/events/{EVENT}/sections/{section}/seats");

    // The API reads the registry's clock: the hold is live until the manual clock moves,
    // however much real time passes.
    server.clock.advance(ttl_ms - 1);
    assert_eq!(server.get(&format!("/v1/holds/{hold}")).await.status, StatusCode::OK);
    assert_eq!(seat_state(server.get(&seats_uri).await.body), "held");

    server.clock.advance(1);
    let expired = server.get(&format!("/v1/holds/{hold}")).await;
    assert_eq!(expired.status, StatusCode::CONFLICT, "{}", expired.body);
    assert!(matches!(expired.code(), "hold_expired" | "hold_ended"), "{}", expired.body);
    assert_eq!(seat_state(server.get(&seats_uri).await.body), "free", "an expired hold shows as free");
    let confirm = json!({"customer": "ana", "payment_reference": "p-1",
        "buyer": {"name": "Ana", "email": "ana@example.com"}});
    let confirmed = server.post(&format!("/v1/holds/{hold}/confirm"), confirm).await;
    assert_eq!(confirmed.status, StatusCode::CONFLICT, "an expired hold is never sold: {}", confirmed.body);
    server.finish().await;
}

/// Every operation the document secures with the admin or gate token, with its path
/// parameters filled in. (The sales token of trusted confirms is not needed without a
/// PSP, as here; `payments.rs` tests it against a server that has one.)
async fn secured_operations(server: &InProcess) -> Vec<(Method, String)> {
    let document = server.get("/v1/openapi.json").await.body;
    let mut operations = Vec::new();
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let sales = operation["security"].to_string().contains("sales_token");
            if operation.get("security").is_some() && !sales {
                let uri = path.replace("{event}", EVENT).replace(['{', '}'], "");
                operations.push((Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), uri));
            }
        }
    }
    operations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_gate_routes_refuse_a_missing_or_wrong_token_before_reading_the_body() {
    let server = InProcess::start().await;
    let operations = secured_operations(&server).await;
    // Every admin and gate route of the API: a route that loses its `security` line
    // must fail here, not silently become public.
    for expected in [
        (Method::POST, "/v1/events".to_owned()),
        (Method::PATCH, format!("/v1/events/{EVENT}")),
        (Method::POST, format!("/v1/events/{EVENT}/open")),
        (Method::POST, format!("/v1/events/{EVENT}/close")),
        (Method::POST, "/v1/admin/backup".to_owned()),
        (Method::POST, "/v1/admin/orders/order/erase-buyer".to_owned()),
        (Method::POST, "/v1/admin/privacy/rewrap".to_owned()),
        (Method::GET, format!("/v1/events/{EVENT}/audit")),
        (Method::POST, "/v1/scan".to_owned()),
        (Method::POST, "/v1/scan/batch".to_owned()),
        (Method::GET, format!("/v1/events/{EVENT}/gate-bundle")),
    ] {
        assert!(operations.contains(&expected), "{expected:?} is not secured in the document: {operations:?}");
    }
    let malformed_bodies = [Some("{\"id\": \"half"), Some("{\"venue\": 7}"), None];
    let wrong_tokens = [
        vec![],
        vec![("authorization", "Bearer wrong")],
        vec![("authorization", "Basic abc")],
        // Each role's token opens only its own routes.
        vec![("authorization", "Bearer in-process-gate")],
        vec![("authorization", "Bearer in-process-admin")],
    ];
    for (method, uri) in &operations {
        let own = if uri.contains("scan") || uri.contains("gate-bundle") { GATE_TOKEN } else { ADMIN_TOKEN };
        for headers in &wrong_tokens {
            if headers.first().is_some_and(|(_, value)| value.ends_with(own)) {
                continue;
            }
            for body in malformed_bodies {
                let answer = server.send(method.clone(), uri, headers, body).await;
                assert_eq!(
                    answer.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} {headers:?} {body:?}: {}",
                    answer.body
                );
                assert_eq!(answer.code(), "unauthorized", "{method} {uri}: {}", answer.body);
            }
        }
        // With its token the same malformed body gets past authentication.
        let bearer = format!("Bearer {own}");
        let answer = server.send(method.clone(), uri, &[("authorization", &bearer)], malformed_bodies[0]).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri}: {}", answer.body);
    }
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_not_stored_as_the_idempotent_answer() {
    let server = InProcess::start().await;
    let key = ("idempotency-key", "create-once");
    let body = json!({"path": ""}).to_string();
    let refused = server.send(Method::POST, "/v1/admin/backup", &[key], Some(&body)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let retried = server.send(Method::POST, "/v1/admin/backup", &[key, ("authorization", &bearer)], Some(&body)).await;
    assert_eq!(
        (retried.status, retried.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_path"),
        "{}",
        retried.body
    );
    server.finish().await;
}

/// Buys `seat` for `customer` and returns the printable page of its ticket.
async fn ticket_page(server: &InProcess, customer: &str, seat: &str) -> String {
    let hold = server.post(&format!("/v1/events/{EVENT}/holds"), json!({"customer": customer, "seats": [seat]})).await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    let confirm = json!({"customer": customer, "payment_reference": format!("pay-{customer}"),
        "buyer": {"name": format!("Buyer {customer}"), "email": format!("{customer}@example.com")}});
    let hold = hold.body["hold"]["id"].as_str().unwrap().to_owned();
    let order = server.post(&format!("/v1/holds/{hold}/confirm"), confirm).await;
    assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
    let ticket = order.body["order"]["tickets"][0]["id"].as_str().unwrap().to_owned();
    let page = server.get(&format!("/v1/tickets/{ticket}/ticket.html?customer={customer}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    page.text
}

/// The demo event (19:30 at +02:00, 17:30 UTC) as a Japanese event in Tokyo: the printed
/// ticket reads in Japanese and Tokyo time; switched to English through the admin API, in
/// English with the zone named. Never the raw UTC timestamp or the seat id alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_page_prints_the_venue_time_and_place_in_the_event_language() {
    let server = InProcess::start_with(|loaded| {
        loaded.venues[0].time_zone = "Asia/Tokyo".into();
        loaded.events[0].language = "ja".into();
    })
    .await
    .unwrap();
    let japanese = ticket_page(&server, "aiko", "S101-D-1").await;
    for text in ["<html lang=\"ja\">", "2027年7月11日(日) 02:30 開演", "Lower Tier 101ブロック D列 1番", "座席", "有効"]
    {
        assert!(japanese.contains(text), "the page shows {text}:\n{japanese}");
    }
    assert!(!japanese.contains("2027-07-10T17:30:00.000Z") && !japanese.contains("現地時間"), "{japanese}");

    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let admin = [("authorization", bearer.as_str())];
    let patch = |language: &str| json!({"language": language}).to_string();
    let refused = server.send(Method::PATCH, &format!("/v1/events/{EVENT}"), &admin, Some(&patch("fr"))).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_language"));
    let changed = server.send(Method::PATCH, &format!("/v1/events/{EVENT}"), &admin, Some(&patch("en"))).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let english = ticket_page(&server, "ben", "S101-D-2").await;
    for text in
        ["<html lang=\"en\">", "Sunday 11 July 2027, 02:30 (JST)", "Section Lower Tier 101, Row D, Seat 2", "Place"]
    {
        assert!(english.contains(text), "the page shows {text}:\n{english}");
    }

    // A new event takes a language too, checked before it is stored.
    let mut create = json!({"id": "matinee", "name": "Matinee", "venue": "hakken-stadium",
        "starts_at": "2027-07-11T14:00:00+09:00", "currency": "EUR", "language": "fr",
        "on_sale": {"opens_at": "2026-01-01T00:00:00Z", "closes_at": "2027-07-11T04:00:00Z"},
        "ticket_types": [{"id": "CAT1", "name": "Category 1", "category": "CAT1", "price_minor": 5000}]});
    let refused = server.send(Method::POST, "/v1/events", &admin, Some(&create.to_string())).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_language"));
    create["language"] = json!("ja");
    let created = server.send(Method::POST, "/v1/events", &admin, Some(&create.to_string())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(server.app.catalogue().event("matinee").unwrap().language, hakken_notify::Language::Ja);
    server.finish().await;
}

/// A time zone the tz database does not know passes the engine's shape check but the
/// server does not serve the event: `App::new` fails (a start-up error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_time_zone_is_not_served() {
    let refused = InProcess::start_with(|loaded| loaded.venues[0].time_zone = "Mars/Olympus_Mons".into()).await;
    let Err(error) = refused else { panic!("an unknown zone was served") };
    assert_eq!(
        error.to_string(),
        "an event cannot be served: venue hakken-stadium: unknown time zone \"Mars/Olympus_Mons\": \
         give an IANA name such as \"Asia/Tokyo\""
    );
}
