//! Bad input gets the documented 4xx and error code, never a 500, a hang or a change;
//! limits answer 429/503 with Retry-After. The server stays healthy and consistent.

mod support;

use serde_json::json;
use support::{Server, ADMIN_TOKEN, EVENT, GATE_TOKEN};

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    status: u16,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &str,
    body: Option<&str>,
    status: u16,
    code: &'static str,
) -> Case {
    Case { name, method, path: path.to_string(), headers: Vec::new(), body: body.map(str::to_string), status, code }
}

fn with_header(mut case: Case, name: &'static str, value: &str) -> Case {
    case.headers.push((name, value.to_string()));
    case
}

/// One table, one row per bad input with the status and code it must get; long because
/// the table is (a row is easier to read and add next to its neighbours than in a helper).
#[test]
fn each_bad_input_gets_its_documented_error_and_changes_nothing() {
    let server = Server::start(&[]);
    let holds = format!("/v1/events/{EVENT}/holds");
    let hold = server.hold(json!({"customer": "owner", "seats": ["S120-A-1"]}));
    let hold_id = hold["id"].as_str().unwrap().to_string();
    let confirm = format!("/v1/holds/{hold_id}/confirm");
    let good_confirm = |customer: &str| {
        json!({"customer": customer, "payment_reference": "p", "buyer": {"name": "N", "email": "n@example.com"}})
            .to_string()
    };
    let oversized = json!({"customer": "x".repeat(20_000), "section": "S101", "quantity": 1}).to_string();
    let event_body = json!({"id": "e", "name": "E", "venue": "hakken-stadium", "starts_at": "2027-01-01T00:00:00Z",
        "on_sale": {"opens_at": "2026-01-01T00:00:00Z", "closes_at": "2027-01-01T00:00:00Z"}, "currency": "EUR",
        "ticket_types": [{"id": "t", "name": "T", "category": "CAT1", "price_minor": 1}]})
    .to_string();

    let cases = vec![
        case("malformed JSON", "POST", &holds, Some("{\"customer\": "), 400, "malformed_json"),
        case("not JSON at all", "POST", &holds, Some("customer=alice"), 400, "malformed_json"),
        case(
            "wrong type",
            "POST",
            &holds,
            Some(r#"{"customer": 5, "section": "S101", "quantity": 1}"#),
            422,
            "invalid_body",
        ),
        case(
            "quantity as string",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "S101", "quantity": "2"}"#),
            422,
            "invalid_body",
        ),
        case("missing customer", "POST", &holds, Some(r#"{"section": "S101", "quantity": 1}"#), 422, "invalid_body"),
        case(
            "unknown field",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "S101", "quantity": 1, "vip": true}"#),
            422,
            "invalid_body",
        ),
        case(
            "empty customer",
            "POST",
            &holds,
            Some(r#"{"customer": "", "section": "S101", "quantity": 1}"#),
            422,
            "invalid_customer",
        ),
        case(
            "unknown event",
            "POST",
            "/v1/events/no-such-show/holds",
            Some(r#"{"customer": "a", "section": "S101", "quantity": 1}"#),
            404,
            "event_not_found",
        ),
        case(
            "unknown section",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "S999", "quantity": 1}"#),
            404,
            "section_not_found",
        ),
        case(
            "unknown seat",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "seats": ["S101-ZZ-99"]}"#),
            404,
            "seat_not_found",
        ),
        case("not a seat id", "POST", &holds, Some(r#"{"customer": "a", "seats": ["banana"]}"#), 404, "seat_not_found"),
        case(
            "zero quantity",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "S101", "quantity": 0}"#),
            422,
            "invalid_quantity",
        ),
        case(
            "negative quantity",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "S101", "quantity": -2}"#),
            422,
            "invalid_body",
        ),
        case(
            "huge quantity",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "FLOOR-A", "quantity": 1000000}"#),
            422,
            "too_many_seats",
        ),
        case(
            "quantity beyond u32",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "S101", "quantity": 99999999999}"#),
            422,
            "invalid_body",
        ),
        case(
            "missing quantity",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "S101"}"#),
            422,
            "missing_quantity",
        ),
        case(
            "duplicate seats",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "seats": ["S101-C-1", "S101-C-1"]}"#),
            422,
            "duplicate_seats",
        ),
        case(
            "seats in two sections",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "seats": ["S101-C-1", "S102-C-1"]}"#),
            422,
            "mixed_sections",
        ),
        case("empty seat list", "POST", &holds, Some(r#"{"customer": "a", "seats": []}"#), 422, "invalid_request"),
        case(
            "seats and section",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "seats": ["S101-C-1"], "section": "S101"}"#),
            422,
            "invalid_request",
        ),
        case("neither seats nor section", "POST", &holds, Some(r#"{"customer": "a"}"#), 422, "invalid_request"),
        case(
            "unknown category",
            "POST",
            &holds,
            Some(r#"{"customer": "a", "section": "S101", "quantity": 1, "category": "GOLD"}"#),
            422,
            "unknown_category",
        ),
        case("oversized body", "POST", &holds, Some(&oversized), 413, "body_too_large"),
        with_header(
            case(
                "wrong content type",
                "POST",
                &holds,
                Some(r#"{"customer": "a", "section": "S101", "quantity": 1}"#),
                415,
                "unsupported_media_type",
            ),
            "Content-Type",
            "text/plain",
        ),
        case("someone else's hold", "POST", &confirm, Some(&good_confirm("mallory")), 403, "hold_not_yours"),
        case("unknown hold", "POST", "/v1/holds/h0-fffff/confirm", Some(&good_confirm("owner")), 404, "hold_not_found"),
        case(
            "garbage hold id",
            "POST",
            "/v1/holds/%20;drop/confirm",
            Some(&good_confirm("owner")),
            404,
            "hold_not_found",
        ),
        case("hold of no section", "GET", "/v1/holds/hffffff-1", None, 404, "hold_not_found"),
        case(
            "bad email",
            "POST",
            &confirm,
            Some(r#"{"customer": "owner", "payment_reference": "p", "buyer": {"name": "N", "email": "nope"}}"#),
            422,
            "invalid_buyer",
        ),
        case(
            "empty payment reference",
            "POST",
            &confirm,
            Some(
                r#"{"customer": "owner", "payment_reference": " ", "buyer": {"name": "N", "email": "n@example.com"}}"#,
            ),
            422,
            "invalid_payment_reference",
        ),
        case("release without customer", "DELETE", &format!("/v1/holds/{hold_id}"), None, 422, "missing_customer"),
        case("order without customer", "GET", "/v1/orders/o0-0", None, 422, "missing_customer"),
        case("unknown order", "GET", "/v1/orders/o0-ffff?customer=a", None, 404, "order_not_found"),
        case("unknown route", "GET", "/v1/nothing-here", None, 404, "route_not_found"),
        case("wrong method", "PUT", "/v1/events", Some("{}"), 405, "method_not_allowed"),
        case("admin without token", "POST", "/v1/events", Some(&event_body), 401, "unauthorized"),
        with_header(
            case("admin with wrong token", "POST", "/v1/events", Some(&event_body), 401, "unauthorized"),
            "Authorization",
            "Bearer guess",
        ),
        with_header(
            case("admin with basic auth", "POST", "/v1/events/demo-2027/close", Some("{}"), 401, "unauthorized"),
            "Authorization",
            &format!("Basic {ADMIN_TOKEN}"),
        ),
        with_header(
            case(
                "admin event on unknown venue",
                "POST",
                "/v1/events",
                Some(&event_body.replace("hakken-stadium", "nowhere")),
                404,
                "venue_not_found",
            ),
            "Authorization",
            &format!("Bearer {ADMIN_TOKEN}"),
        ),
        with_header(
            case(
                "admin event with a bad time",
                "POST",
                "/v1/events",
                Some(&event_body.replace("2027-01-01T00:00:00Z", "soon")),
                422,
                "invalid_time",
            ),
            "Authorization",
            &format!("Bearer {ADMIN_TOKEN}"),
        ),
        case("ticket without customer", "GET", "/v1/tickets/t0-0-0", None, 422, "missing_customer"),
        case("unknown ticket", "GET", "/v1/tickets/t0-ffff-0?customer=a", None, 404, "ticket_not_found"),
        case("garbage ticket id", "GET", "/v1/tickets/t0-0-x/qr.png?customer=a", None, 404, "ticket_not_found"),
        case("reissue without proof", "POST", "/v1/tickets/t0-0-0/reissue", Some("{}"), 404, "ticket_not_found"),
        case("scan without gate token", "POST", "/v1/scan", Some(r#"{"code": "x", "gate": "g"}"#), 401, "unauthorized"),
        with_header(
            case(
                "scan with the admin token",
                "POST",
                "/v1/scan",
                Some(r#"{"code": "x", "gate": "g"}"#),
                401,
                "unauthorized",
            ),
            "Authorization",
            &format!("Bearer {ADMIN_TOKEN}"),
        ),
        with_header(
            case("scan without gate", "POST", "/v1/scan", Some(r#"{"code": "x"}"#), 422, "invalid_body"),
            "Authorization",
            &format!("Bearer {GATE_TOKEN}"),
        ),
        with_header(
            case(
                "scan at a blank gate",
                "POST",
                "/v1/scan",
                Some(r#"{"code": "x", "gate": " "}"#),
                422,
                "invalid_scan",
            ),
            "Authorization",
            &format!("Bearer {GATE_TOKEN}"),
        ),
        with_header(
            case("empty offline batch", "POST", "/v1/scan/batch", Some(r#"{"scans": []}"#), 422, "invalid_batch"),
            "Authorization",
            &format!("Bearer {GATE_TOKEN}"),
        ),
        with_header(
            case("bundle of no event", "GET", "/v1/events/nope/gate-bundle", None, 404, "event_not_found"),
            "Authorization",
            &format!("Bearer {GATE_TOKEN}"),
        ),
        case("audit without token", "GET", &format!("/v1/events/{EVENT}/audit"), None, 401, "unauthorized"),
        with_header(
            case("audit page of 0", "GET", &format!("/v1/events/{EVENT}/audit?limit=0"), None, 422, "invalid_limit"),
            "Authorization",
            &format!("Bearer {ADMIN_TOKEN}"),
        ),
        with_header(
            case(
                "audit of a bad ticket id",
                "GET",
                &format!("/v1/events/{EVENT}/audit?ticket=x"),
                None,
                422,
                "invalid_ticket",
            ),
            "Authorization",
            &format!("Bearer {ADMIN_TOKEN}"),
        ),
        with_header(
            case(
                "bad idempotency key",
                "POST",
                &holds,
                Some(r#"{"customer": "a", "section": "S101", "quantity": 1}"#),
                400,
                "invalid_idempotency_key",
            ),
            "Idempotency-Key",
            "has spaces",
        ),
        with_header(
            case(
                "request timeout of 0 ms",
                "POST",
                &holds,
                Some(r#"{"customer": "a", "section": "S101", "quantity": 1}"#),
                400,
                "invalid_request_timeout",
            ),
            "X-Request-Timeout-Ms",
            "0",
        ),
        with_header(
            case(
                "request timeout not a number",
                "POST",
                &confirm,
                Some(&good_confirm("owner")),
                400,
                "invalid_request_timeout",
            ),
            "X-Request-Timeout-Ms",
            "soon",
        ),
    ];

    for case in &cases {
        let headers: Vec<(&str, &str)> = case.headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
        let reply = server.request(case.method, &case.path, &headers, case.body.as_deref());
        assert_eq!((reply.status, reply.code()), (case.status, case.code), "{}: {}", case.name, reply.text);
        let message = reply.json["error"]["message"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{}: a message says what is wrong", case.name);
    }

    // Healthy and unchanged: only the one good hold is held, nothing sold, nothing created.
    assert_eq!(server.get("/readyz").status, 200);
    let availability = server.get(&format!("/v1/events/{EVENT}/availability"));
    assert_eq!(
        (availability.json["total"]["held"].as_u64(), availability.json["total"]["sold"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(server.get("/v1/events").json["events"].as_array().unwrap().len(), 1);
    let order = server.confirm(&hold_id, "owner");
    assert_eq!(order["tickets"][0]["seat"], "S120-A-1");
}

#[test]
fn a_customer_over_its_request_rate_gets_429_with_retry_after() {
    let server =
        Server::start(&[("HAKKEN_HTTP_CUSTOMER_REQUESTS_PER_S", "1"), ("HAKKEN_HTTP_CUSTOMER_REQUESTS_BURST", "3")]);
    let holds = format!("/v1/events/{EVENT}/holds");
    let statuses: Vec<u16> = (0..5)
        .map(|_| server.post(&holds, json!({"customer": "eager", "section": "FLOOR-B", "quantity": 1})).status)
        .collect();
    assert_eq!(&statuses[..3], &[201, 201, 201]);
    let limited = server.post(&holds, json!({"customer": "eager", "section": "FLOOR-B", "quantity": 1}));
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(server.post(&holds, json!({"customer": "patient", "section": "FLOOR-B", "quantity": 1})).status, 201);
}

#[test]
fn a_server_at_its_in_flight_limit_refuses_at_once_with_503_and_retry_after() {
    let server = Server::start(&[("HAKKEN_HTTP_IN_FLIGHT_MAX", "0"), ("HAKKEN_HTTP_RETRY_AFTER_S", "2")]);
    let started = std::time::Instant::now();
    let reply =
        server.post(&format!("/v1/events/{EVENT}/holds"), json!({"customer": "a", "section": "S101", "quantity": 1}));
    assert_eq!((reply.status, reply.code()), (503, "overloaded"));
    assert_eq!(reply.header("retry-after"), Some("2"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(server.get("/healthz").status, 200, "probes are never refused");
    assert_eq!(server.get("/readyz").json, json!({"status": "ok"}));
}
