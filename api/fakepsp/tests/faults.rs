//! The fake PSP embedded as a library (as hakken's `test` provider embeds it), driven over
//! real HTTP: webhook delivery and its faults, API faults, bounds, stats and stop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hakken_fakepsp::{signing, Config, Control, Faults, RunningPsp, WebhookConfig, DEFAULT_SECRET_KEY};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

const SECRET: &str = "whsec_faults_test";

/// Webhook deliveries as received: (Stripe-Signature, User-Agent, body).
#[derive(Clone, Default)]
struct Receiver {
    deliveries: Arc<Mutex<Vec<(String, String, Bytes)>>>,
    /// The next N deliveries are answered 500.
    fail_next: Arc<AtomicU32>,
}

impl Receiver {
    async fn start(&self) -> String {
        async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_string();
            let failing =
                receiver.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            receiver.deliveries.lock().unwrap().push((header("stripe-signature"), header("user-agent"), body));
            if failing {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new().route("/hook", post(hook)).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn events(&self) -> Vec<Value> {
        let deliveries = self.deliveries.lock().unwrap();
        deliveries.iter().map(|(_, _, body)| serde_json::from_slice(body).unwrap()).collect()
    }

    fn count(&self) -> usize {
        self.deliveries.lock().unwrap().len()
    }
}

fn config() -> Config {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), SECRET);
    config.seed = Some(3);
    config.webhook = WebhookConfig { retry_base_ms: 10, ..WebhookConfig::default() };
    config
}

async fn start(config: Config) -> (RunningPsp, Control) {
    let running = hakken_fakepsp::start(config).await.unwrap();
    let control = running.control();
    (running, control)
}

/// One request on a fresh connection: (status, headers, JSON body), or the transport error.
async fn call(
    address: SocketAddr,
    method: &str,
    path: &str,
    form: &str,
    idempotency_key: Option<&str>,
) -> Result<(u16, HeaderMap, Value), String> {
    let stream = tokio::net::TcpStream::connect(address).await.map_err(|error| error.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|error| error.to_string())?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string())
        .header("authorization", format!("Bearer {DEFAULT_SECRET_KEY}"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let request = request.body(Full::new(Bytes::from(form.to_string()))).unwrap();
    let response = sender.send_request(request).await.map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|error| error.to_string())?.to_bytes();
    Ok((status, headers, serde_json::from_slice(&body).map_err(|error| error.to_string())?))
}

async fn create(address: SocketAddr) -> String {
    let (status, _, intent) =
        call(address, "POST", "/v1/payment_intents", "amount=5000&currency=eur&capture_method=manual", None)
            .await
            .unwrap();
    assert_eq!(status, 200, "{intent}");
    intent["id"].as_str().unwrap().to_string()
}

async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_a_late_url_and_for_resume_and_are_signed_as_stripe() {
    let (running, control) = start(config()).await;
    let id = create(running.addr()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(control.stats().webhooks.queued, 1, "no URL yet: the event waits");

    let receiver = Receiver::default();
    control.set_webhook_url(Some(&receiver.start().await)).unwrap();
    wait_for("the first delivery", || receiver.count() == 1).await;
    let (signature, user_agent, body) = receiver.deliveries.lock().unwrap()[0].clone();
    assert_eq!(user_agent, "Stripe/1.0 (+https://stripe.com/docs/webhooks)");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(signing::verify(SECRET, &signature, &body, now, 300), Ok(()));
    assert_eq!(receiver.events()[0]["type"], "payment_intent.created");
    assert_eq!(receiver.events()[0]["data"]["object"]["id"], id.as_str());

    control.update_faults(|faults| faults.webhooks_paused = true).unwrap();
    create(running.addr()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.count(), 1, "paused: nothing delivered");
    control.update_faults(|faults| faults.webhooks_paused = false).unwrap();
    wait_for("the delivery after resume", || receiver.count() == 2).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_events_stay_listable_and_reordered_batches_come_newest_first() {
    let receiver = Receiver::default();
    let mut config = config();
    config.webhook_url = Some(receiver.start().await);
    config.webhook.concurrency = 1;
    config.faults = Faults { webhook_drop_next: 1, ..Faults::default() };
    let (running, control) = start(config).await;
    let dropped = create(running.addr()).await;
    wait_for("the drop", || control.stats().webhooks.dropped == 1).await;
    let (_, _, events) = call(running.addr(), "GET", "/v1/events?type=payment_intent.created", "", None).await.unwrap();
    assert_eq!(events["data"][0]["data"]["object"]["id"], dropped.as_str(), "a dropped event is still listable");

    control.update_faults(|faults| faults.webhook_reorder_batch = 3).unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create(running.addr()).await);
    }
    wait_for("the reordered batch", || receiver.count() == 3).await;
    let delivered: Vec<String> =
        receiver.events().iter().map(|event| event["data"]["object"]["id"].as_str().unwrap().to_string()).collect();
    ids.reverse();
    assert_eq!(delivered, ids, "a held-back batch is delivered newest first");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_until_2xx() {
    let receiver = Receiver::default();
    receiver.fail_next.store(2, Ordering::SeqCst);
    let mut config = config();
    config.webhook_url = Some(receiver.start().await);
    let (running, control) = start(config).await;
    create(running.addr()).await;
    wait_for("three attempts", || control.stats().webhooks.delivered == 1).await;
    let stats = control.stats().webhooks;
    assert_eq!((stats.attempts, stats.failed_attempts, stats.gave_up), (3, 2, 0));
    let events = receiver.events();
    assert!(events.iter().all(|event| event["id"] == events[0]["id"]), "every attempt carries the same event");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_hang_then_close_and_applied_ones_replay_under_their_key() {
    let (running, control) = start(config()).await;
    let address = running.addr();
    control
        .update_faults(|faults| {
            faults.timeout_next = 1;
            faults.timeout_hang_ms = 300;
        })
        .unwrap();
    let started = Instant::now();
    let lost = call(address, "POST", "/v1/payment_intents", "amount=5000&currency=eur", Some("t-1")).await;
    assert!(lost.is_err(), "a timed-out call gets no answer: {lost:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (_, _, list) = call(address, "GET", "/v1/payment_intents", "", None).await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "an unapplied timeout creates nothing");

    control
        .update_faults(|faults| {
            faults.timeout_next = 1;
            faults.timeout_applies = true;
        })
        .unwrap();
    assert!(call(address, "POST", "/v1/payment_intents", "amount=5000&currency=eur", Some("t-2")).await.is_err());
    let (status, headers, intent) =
        call(address, "POST", "/v1/payment_intents", "amount=5000&currency=eur", Some("t-2")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers.get("idempotent-replayed").map(|value| value.to_str().unwrap()), Some("true"));
    let (_, _, list) = call(address, "GET", "/v1/payment_intents", "", None).await.unwrap();
    assert_eq!(list["data"][0]["id"], intent["id"], "the applied call created exactly one intent");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(control.stats().api.timed_out, 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_captures_capture_once_and_stats_say_so() {
    let (running, control) = start(config()).await;
    let address = running.addr();
    let id = create(address).await;
    let (status, _, _) =
        call(address, "POST", &format!("/v1/payment_intents/{id}/confirm"), "payment_method=pm_card_visa", None)
            .await
            .unwrap();
    assert_eq!(status, 200);
    let path = format!("/v1/payment_intents/{id}/capture");
    let captures: Vec<_> = (0..8)
        .map(|n| {
            let path = path.clone();
            tokio::spawn(async move { call(address, "POST", &path, "", Some(&format!("cap-{n}"))).await.unwrap().0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for capture in captures {
        statuses.push(capture.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 400, 400, 400, 400, 400, 400, 400]);
    // A replay of the successful key is not a second capture either.
    for n in 0..8 {
        call(address, "POST", &path, "", Some(&format!("cap-{n}"))).await.unwrap();
    }
    assert_eq!(control.stats().payment_intents[&id].captures, 1);
    assert_eq!(control.stats().api.replayed, 8);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_is_bounded_with_a_clear_4xx() {
    let mut config = config();
    config.objects_max = 4; // two intents and their two created events
    let (running, _control) = start(config).await;
    create(running.addr()).await;
    create(running.addr()).await;
    let (status, _, error) =
        call(running.addr(), "POST", "/v1/payment_intents", "amount=5000&currency=eur", None).await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "fakepsp_objects_max");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_refuses_bad_faults_and_stop_ends_hanging_calls() {
    let (running, control) = start(config()).await;
    let address = running.addr();
    let post_json = |path: &'static str, body: &'static str| async move {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let request = Request::post(path)
            .header("host", address.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice::<Value>(&body).unwrap())
    };
    let (status, error) = post_json("/_fake/faults", r#"{"fail_nxt": 1}"#).await;
    assert_eq!(status, 400, "{error}");
    let (status, faults) = post_json("/_fake/faults", r#"{"fail_next": 1, "timeout_hang_ms": 60000}"#).await;
    assert_eq!((status, faults["fail_next"].as_u64()), (200, Some(1)));
    assert_eq!(control.faults().timeout_hang_ms, 60_000);
    let (status, _) = post_json("/_fake/webhook_url", r#"{"url": "https://example.com/hook"}"#).await;
    assert_eq!(status, 400, "https is refused: the fake is for loopback tests");

    let (status, _, error) =
        call(address, "POST", "/v1/payment_intents", "amount=5000&currency=eur", None).await.unwrap();
    assert_eq!((status, error["error"]["type"].as_str()), (500, Some("api_error")));

    control.update_faults(|faults| faults.timeout_next = 1).unwrap();
    let hanging = tokio::spawn(async move { call(address, "GET", "/v1/payment_intents", "", None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = Instant::now();
    running.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(5), "stop waited for the 60 s hang");
    assert!(hanging.await.unwrap().is_err());
}
