//! hakken's webhook verifier against the official `stripe` Python SDK: the SDK's own
//! signing code makes the headers (valid, two v1 during a rotation, stale, future,
//! altered body, wrong secret, malformed, missing), `stripe.Webhook.construct_event`
//! judges each, and [`verify`] must come to the same verdict, for the reason this
//! table names. One documented difference: hakken also refuses a timestamp further than
//! the tolerance in the future, which the SDK accepts.
//!
//! Needs `python3 -m pip install 'stripe==16.1.0'`; without it the test fails and says so.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use hakken_api::payments::signature::{sign, verify};
use hakken_api::payments::webhook::{EventType, KeyMode, WebhookEvent};
use serde::Deserialize;

#[derive(Deserialize)]
struct Report {
    sdk_version: String,
    now: i64,
    tolerance_s: i64,
    cases: Vec<Case>,
    signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    body: String,
    header: Option<String>,
    secrets: Vec<String>,
    sdk_accepts: bool,
    sdk_error: Option<String>,
}

#[derive(Deserialize)]
struct Signature {
    body: String,
    secret: String,
    t: i64,
    header: String,
}

/// What hakken says of each case the script makes: `Ok` or the error's code.
const EXPECTED: &[(&str, Result<(), &str>)] = &[
    ("valid", Ok(())),
    ("valid_unicode_body", Ok(())),
    ("rotation_two_v1_hakken_has_new", Ok(())),
    ("rotation_two_v1_hakken_has_old", Ok(())),
    ("rotation_hakken_has_both", Ok(())),
    ("v0_beside_v1", Ok(())),
    ("within_tolerance_past", Ok(())),
    ("stale", Err("signature_stale")),
    ("within_tolerance_future", Ok(())),
    // The one case where hakken is stricter than the SDK (see the module comment).
    ("future", Err("signature_future")),
    ("altered_body", Err("signature_mismatch")),
    ("wrong_secret", Err("signature_mismatch")),
    ("wrong_secret_stale", Err("signature_mismatch")),
    ("timestamp_moved", Err("signature_mismatch")),
    ("only_v0", Err("signature_no_v1")),
    ("uppercase_hex", Err("signature_mismatch")),
    ("no_timestamp", Err("signature_malformed")),
    ("timestamp_not_a_number", Err("signature_malformed")),
    ("garbage_header", Err("signature_malformed")),
    ("empty_header", Err("signature_missing")),
    ("no_header", Err("signature_missing")),
];

/// Cases where hakken refuses what the SDK accepts, on purpose.
const STRICTER_THAN_SDK: &[&str] = &["future"];

/// The script's report, made once per test binary (importing the SDK takes a second).
fn sdk_report() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(run_script)
}

fn run_script() -> Report {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stripe_signature.py");
    let output = Command::new("python3")
        .arg(&script)
        .output()
        .unwrap_or_else(|error| panic!("cannot run python3 {}: {error}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}): {}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints one JSON report")
}

#[test]
fn verify_agrees_with_the_stripe_sdk() {
    let report = sdk_report();
    assert_eq!(report.sdk_version, "16.1.0");
    let expected: BTreeMap<&str, Result<(), &str>> = EXPECTED.iter().copied().collect();
    let names: Vec<&str> = report.cases.iter().map(|case| case.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected.keys().copied().collect::<Vec<_>>(), "the script and EXPECTED list the same cases");
    for case in &report.cases {
        let wanted =
            *expected.get(case.name.as_str()).unwrap_or_else(|| panic!("case {:?} is not in EXPECTED", case.name));
        let outcome =
            verify(case.header.as_deref(), case.body.as_bytes(), &case.secrets, report.now, report.tolerance_s)
                .map(|_| ())
                .map_err(|error| error.code());
        assert_eq!(outcome, wanted, "case {}: hakken's verdict (the SDK said {:?})", case.name, case.sdk_error);
        let stricter = STRICTER_THAN_SDK.contains(&case.name.as_str());
        assert_eq!(
            outcome.is_ok(),
            case.sdk_accepts && !stricter,
            "case {}: hakken and construct_event disagree (SDK: {:?})",
            case.name,
            case.sdk_error
        );
        if stricter {
            assert!(case.sdk_accepts, "case {}: the SDK became as strict; drop it from STRICTER_THAN_SDK", case.name);
        }
    }
}

#[test]
fn sign_makes_the_sdks_header() {
    let report = sdk_report();
    assert!(!report.signatures.is_empty());
    for signature in &report.signatures {
        assert_eq!(sign(signature.body.as_bytes(), &signature.secret, signature.t), signature.header);
    }
}

#[test]
fn events_the_sdk_accepts_parse() {
    let report = sdk_report();
    let valid = report.cases.iter().find(|case| case.name == "valid").expect("a valid case");
    let event = WebhookEvent::parse(valid.body.as_bytes()).expect("an SDK-signed event parses");
    assert_eq!(event.id, "evt_1Valid");
    assert_eq!(event.event_type, EventType::PaymentIntentAmountCapturableUpdated);
    assert_eq!(event.payment_intent(), Some("pi_3TestAbc"));
    assert!(KeyMode::of_secret_key("sk_test_abc").expect("a test key").accepts(&event));
    assert!(!KeyMode::of_secret_key("sk_live_abc").expect("a live key").accepts(&event));
}
