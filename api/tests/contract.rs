//! The OpenAPI document is the whole contract, checked against the running server.
//!
//! For every operation of `/v1/openapi.json` this sends requests the document allows
//! (values built from its schemas: examples, and strings at their length bounds) and
//! requests it forbids (no token, not JSON, wrong types, too long, unknown ids, bad
//! `Idempotency-Key`), and checks that
//! (a) every answer has a status the document lists for that operation, and
//! (b) no request the document allows is refused as malformed (400, 415, or 422 with
//!     an `invalid_*`/`missing_*` code that is about the request's form, not its meaning).
//!
//! The generator knows JSON Schema only as far as the document uses it: `$ref`,
//! objects (`required`, `properties`, maps), `oneOf` of required-field alternatives
//! (with `not` naming fields an alternative forbids), arrays, strings (`minLength`,
//! `maxLength`, `pattern`, `format`, `example`), integers and booleans. A schema it
//! cannot satisfy (a pattern with no example that matches it) fails the test: give it
//! an example.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use regex::Regex;
use serde_json::{json, Map, Value};
use support::{Server, ADMIN_TOKEN, EVENT, GATE_TOKEN};

/// Real ids for path parameters, so allowed requests reach the handlers' own checks.
struct Fixtures {
    hold: String,
    order: String,
    ticket: String,
    backup_dir: tempfile::TempDir,
}

fn fixtures(server: &Server) -> Fixtures {
    let hold = server.hold(json!({"customer": "fixture", "section": "S102", "quantity": 2}));
    let sold = server.hold(json!({"customer": "fixture", "section": "S102", "quantity": 1}));
    let order = server.confirm(sold["id"].as_str().unwrap(), "fixture");
    Fixtures {
        hold: hold["id"].as_str().unwrap().into(),
        order: order["id"].as_str().unwrap().into(),
        ticket: order["tickets"][0]["id"].as_str().unwrap().into(),
        backup_dir: tempfile::tempdir().unwrap(),
    }
}

struct Document<'a> {
    root: &'a Value,
}

impl<'a> Document<'a> {
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                self.resolve(&self.root["components"]["schemas"][name])
            }
            None => schema,
        }
    }
}

/// Which values to build: the smallest allowed, or everything at its largest.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Variant {
    Smallest,
    Largest,
}

/// Schema types without `null` (utoipa writes `Option<T>` as `[T, "null"]`).
fn schema_type(schema: &Value) -> Option<&str> {
    match &schema["type"] {
        Value::String(name) => Some(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).find(|name| *name != "null"),
        _ => None,
    }
}

/// The string at `variant`'s length bound, or the example when a pattern demands more
/// than repeated letters; panics if no candidate satisfies the schema.
fn string_value(schema: &Value, variant: Variant, place: &str) -> String {
    let min = schema["minLength"].as_u64().unwrap_or(1).max(1) as usize;
    let max = schema["maxLength"].as_u64().map(|max| max as usize);
    let length = match variant {
        Variant::Smallest => min,
        Variant::Largest => max.unwrap_or(min.max(8)),
    };
    let mut candidates = vec!["a".repeat(length)];
    if let Some(example) = schema["example"].as_str() {
        candidates.insert(usize::from(variant == Variant::Smallest), example.to_owned());
    }
    if schema["format"] == "date-time" {
        candidates.insert(0, schema["example"].as_str().unwrap_or("2027-03-01T12:00:00Z").to_owned());
    }
    let pattern = schema["pattern"].as_str().map(|pattern| Regex::new(pattern).expect("the pattern compiles"));
    let fits = |candidate: &String| {
        let chars = candidate.chars().count();
        chars >= min
            && max.is_none_or(|max| chars <= max)
            && pattern.as_ref().is_none_or(|pattern| pattern.is_match(candidate))
    };
    let found = candidates.iter().find(|candidate| fits(candidate));
    found.unwrap_or_else(|| panic!("{place}: no example satisfies {schema}")).clone()
}

/// Every body `schema` allows in `variant` (one per `oneOf` alternative).
fn values(document: &Document, schema: &Value, variant: Variant, place: &str) -> Vec<Value> {
    let schema = document.resolve(schema);
    if let Some(example) = schema.get("example").filter(|_| schema_type(schema) != Some("string")) {
        return vec![example.clone()];
    }
    if schema_type(schema).is_none() {
        // `Option<Struct>`: `oneOf: [null, $ref]` (or `allOf: [$ref]`); the value is the struct.
        let alternatives = schema["oneOf"].as_array().or(schema["allOf"].as_array());
        let inner = alternatives.into_iter().flatten().find(|alternative| alternative["type"] != "null");
        if let Some(inner) = inner {
            return values(document, inner, variant, place);
        }
    }
    match schema_type(schema) {
        Some("object") => objects(document, schema, variant, place),
        Some("array") => {
            let items = values(document, &schema["items"], variant, place);
            let count = schema["minItems"].as_u64().unwrap_or(1).max(1) as usize;
            vec![Value::Array(items.into_iter().cycle().take(count).collect())]
        }
        Some("string") => vec![Value::String(string_value(schema, variant, place))],
        Some("integer") => {
            let least = schema["minimum"].as_i64().unwrap_or(0);
            vec![json!(match variant {
                Variant::Smallest => least,
                Variant::Largest => schema["maximum"].as_i64().unwrap_or(least + 1),
            })]
        }
        Some("boolean") => vec![json!(variant == Variant::Largest)],
        other => panic!("{place}: no generator for type {other:?} in {schema}"),
    }
}

/// One object per alternative: the required fields (all fields when largest), less
/// the ones the alternative forbids.
fn objects(document: &Document, schema: &Value, variant: Variant, place: &str) -> Vec<Value> {
    let properties = schema["properties"].as_object().cloned().unwrap_or_default();
    if properties.is_empty() {
        return vec![json!({})]; // a map (`additionalProperties`): empty is allowed
    }
    let names = |value: &Value| -> BTreeSet<String> {
        value.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    let required = names(&schema["required"]);
    let alternatives: Vec<(BTreeSet<String>, BTreeSet<String>)> = match schema["oneOf"].as_array() {
        None => vec![(BTreeSet::new(), BTreeSet::new())],
        Some(alternatives) => alternatives
            .iter()
            .map(|alternative| {
                let mut forbidden = names(&alternative["not"]["required"]);
                for excluded in alternative["not"]["anyOf"].as_array().into_iter().flatten() {
                    forbidden.extend(names(&excluded["required"]));
                }
                (names(&alternative["required"]), forbidden)
            })
            .collect(),
    };
    let mut built = Vec::new();
    for (needed, forbidden) in alternatives {
        let mut object = Map::new();
        for (name, property) in &properties {
            let wanted = required.contains(name) || needed.contains(name) || variant == Variant::Largest;
            if wanted && !forbidden.contains(name) {
                let place = format!("{place}.{name}");
                object.insert(name.clone(), values(document, property, variant, &place).remove(0));
            }
        }
        built.push(Value::Object(object));
    }
    built
}

/// One request: method, path with query, headers, body.
#[derive(Debug)]
struct Attempt {
    uri: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    allowed: bool,
}

struct Operation<'a> {
    method: String,
    path: String,
    spec: &'a Value,
}

impl Operation<'_> {
    fn token(&self) -> Option<&'static str> {
        let security = self.spec.get("security")?.to_string();
        Some(if security.contains("gate_token") { GATE_TOKEN } else { ADMIN_TOKEN })
    }

    fn listed(&self) -> BTreeSet<u16> {
        self.spec["responses"].as_object().unwrap().keys().filter_map(|status| status.parse().ok()).collect()
    }

    fn parameters(&self, place: &str) -> Vec<&Value> {
        self.spec["parameters"].as_array().into_iter().flatten().filter(|parameter| parameter["in"] == place).collect()
    }
}

fn path_with(operation: &Operation, fixtures: &Fixtures, unknown: bool) -> String {
    let mut path = operation.path.clone();
    for parameter in operation.parameters("path") {
        let name = parameter["name"].as_str().unwrap();
        let value = match (name, unknown) {
            (_, true) => "nope",
            ("event", _) => EVENT,
            ("section", _) => "S101",
            ("hold", _) => &fixtures.hold,
            ("order", _) => &fixtures.order,
            ("ticket", _) => &fixtures.ticket,
            // An outbox entry: the server here sends no notifications, so a retry is 409.
            ("id", _) => "1",
            // The demo event has no waiting room: a place token of it cannot exist (404).
            ("token", _) => "HQ1.nope",
            (other, _) => panic!("{} {}: no fixture for path parameter {other}", operation.method, operation.path),
        };
        path = path.replace(&format!("{{{name}}}"), value);
    }
    path
}

fn query_with(document: &Document, operation: &Operation, variant: Variant) -> String {
    let mut pairs = Vec::new();
    for parameter in operation.parameters("query") {
        if parameter["required"] == true || variant == Variant::Largest {
            let name = parameter["name"].as_str().unwrap();
            let place = format!("{} {} ?{name}", operation.method, operation.path);
            // A parameter's example sits beside its schema, not in it.
            let mut schema = parameter["schema"].clone();
            if let (Some(example), Some(object)) = (parameter.get("example"), schema.as_object_mut()) {
                object.entry("example").or_insert_with(|| example.clone());
            }
            let value = values(document, &schema, variant, &place).remove(0);
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            pairs.push(format!("{name}={}", percent_encoded(&text)));
        }
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn body_schema<'a>(operation: &Operation<'a>) -> Option<&'a Value> {
    operation.spec.get("requestBody").map(|body| &body["content"]["application/json"]["schema"])
}

/// A backup writes where it is told: into a fresh directory of the test's, never the
/// server's working directory.
fn into_test_dir(body: &mut Value, fixtures: &Fixtures) {
    static BACKUPS: AtomicU32 = AtomicU32::new(0);
    if let Some(path) = body.get_mut("path") {
        let serial = BACKUPS.fetch_add(1, Ordering::Relaxed);
        *path = json!(fixtures.backup_dir.path().join(format!("backup-{serial}")).display().to_string());
    }
}

/// Requests the document allows: smallest and largest values, each `oneOf` alternative.
fn allowed(document: &Document, operation: &Operation, fixtures: &Fixtures, serial: &mut u32) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for variant in [Variant::Smallest, Variant::Largest] {
        let uri = format!("{}{}", path_with(operation, fixtures, false), query_with(document, operation, variant));
        let mut headers = Vec::new();
        if let Some(token) = operation.token() {
            headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
        }
        if variant == Variant::Largest && operation.parameters("header").iter().any(|p| p["name"] == "Idempotency-Key")
        {
            *serial += 1;
            headers.push(("Idempotency-Key".to_owned(), format!("contract-{serial}")));
        }
        let bodies = match body_schema(operation) {
            None => vec![None],
            Some(schema) => {
                let place = format!("{} {} body", operation.method, operation.path);
                values(document, schema, variant, &place).into_iter().map(Some).collect()
            }
        };
        for mut body in bodies {
            if let Some(body) = body.as_mut() {
                into_test_dir(body, fixtures);
            }
            let body = body.map(|body| body.to_string());
            attempts.push(Attempt { uri: uri.clone(), headers: headers.clone(), body, allowed: true });
        }
    }
    attempts
}

/// Requests the document forbids; only their statuses are checked.
fn forbidden(document: &Document, operation: &Operation, fixtures: &Fixtures) -> Vec<Attempt> {
    let uri =
        format!("{}{}", path_with(operation, fixtures, false), query_with(document, operation, Variant::Smallest));
    let auth: Vec<(String, String)> =
        operation.token().map(|token| ("Authorization".to_owned(), format!("Bearer {token}"))).into_iter().collect();
    let with_body = body_schema(operation).is_some();
    let mut valid_body = body_schema(operation)
        .map(|schema| values(document, schema, Variant::Smallest, "forbidden").remove(0))
        .unwrap_or(json!({}));
    into_test_dir(&mut valid_body, fixtures);
    let attempt = |uri: &str, headers: Vec<(String, String)>, body: Option<String>| Attempt {
        uri: uri.to_owned(),
        headers,
        body,
        allowed: false,
    };
    let mut attempts = vec![attempt(
        &format!("{}{}", path_with(operation, fixtures, true), query_with(document, operation, Variant::Smallest)),
        auth.clone(),
        with_body.then(|| valid_body.to_string()),
    )];
    if operation.token().is_some() {
        attempts.push(attempt(&uri, vec![], Some("{\"half".into())));
        attempts.push(attempt(&uri, vec![("Authorization".into(), "Bearer wrong".into())], None));
    }
    if operation.method == "post" {
        let mut headers = auth.clone();
        headers.push(("Idempotency-Key".into(), "has spaces in it".into()));
        attempts.push(attempt(&uri, headers, with_body.then(|| valid_body.to_string())));
    }
    if !operation.parameters("query").is_empty() {
        let path = path_with(operation, fixtures, false);
        attempts.push(attempt(&path, auth.clone(), None));
        attempts.push(attempt(&format!("{path}?customer={}", "a".repeat(300)), auth.clone(), None));
    }
    if with_body {
        let mut wrong_type = valid_body.clone();
        if let Some(object) = wrong_type.as_object_mut() {
            for value in object.values_mut() {
                *value = json!(7);
            }
        }
        let mut plain = auth.clone();
        plain.push(("Content-Type".into(), "text/plain".into()));
        for body in ["{\"half".to_owned(), "{}".to_owned(), wrong_type.to_string(), "x".repeat(40_000)] {
            attempts.push(attempt(&uri, auth.clone(), Some(body)));
        }
        attempts.push(attempt(&uri, plain, Some(valid_body.to_string())));
        let mut unknown_field = valid_body.clone();
        if let Some(object) = unknown_field.as_object_mut() {
            object.insert("surprise".into(), json!(true));
        }
        attempts.push(attempt(&uri, auth.clone(), Some(unknown_field.to_string())));
    }
    attempts
}

/// A refusal about the request's form (what the document describes), not its meaning.
fn malformed(status: u16, code: &str) -> bool {
    status == 400 || status == 415 || (status == 422 && (code.starts_with("invalid_") || code.starts_with("missing_")))
}

/// Semantic 422s whose codes start with `invalid_` but depend on the server's data or
/// on rules across fields that JSON Schema does not carry (each stated in the document's
/// descriptions), not on the request's form.
const MEANING_NOT_FORM: [&str; 0] = [];

#[test]
fn every_answer_is_in_the_document_and_every_allowed_request_is_well_formed() {
    let server = Server::start(&[("HAKKEN_HTTP_CUSTOMER_REQUESTS_BURST", "0")]);
    let fixtures = fixtures(&server);
    let reply = server.get("/v1/openapi.json");
    assert_eq!(reply.status, 200);
    let document = Document { root: &reply.json };
    let mut serial = 0;
    let mut problems = Vec::new();
    let mut sent = 0;
    for (path, methods) in reply.json["paths"].as_object().unwrap() {
        for (method, spec) in methods.as_object().unwrap() {
            let operation = Operation { method: method.clone(), path: path.clone(), spec };
            let listed = operation.listed();
            let mut attempts = allowed(&document, &operation, &fixtures, &mut serial);
            attempts.extend(forbidden(&document, &operation, &fixtures));
            for attempt in attempts {
                let headers: Vec<(&str, &str)> =
                    attempt.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
                let answer = server.request(&method.to_uppercase(), &attempt.uri, &headers, attempt.body.as_deref());
                sent += 1;
                let code = answer.code().to_owned();
                if !listed.contains(&answer.status) {
                    problems.push(format!(
                        "{method} {path}: {} `{code}` is not listed ({listed:?}) for {attempt:?}",
                        answer.status
                    ));
                }
                if attempt.allowed && malformed(answer.status, &code) && !MEANING_NOT_FORM.contains(&code.as_str()) {
                    problems.push(format!(
                        "{method} {path}: an allowed request was refused as malformed: {} {}\n  {attempt:?}",
                        answer.status, answer.text
                    ));
                }
            }
        }
    }
    assert!(sent > 150, "only {sent} requests sent");
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}
