//! Stripe's webhook signatures (`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>]`), checked
//! before hakken reads a byte of a webhook's body.
//!
//! Why hand-written: the scheme is a dozen lines of HMAC-SHA256, and the official SDKs are
//! the reference it is tested against (`tests/stripe_signature.rs` makes headers with
//! Python's `stripe` package and checks that [`verify`] agrees with
//! `stripe.Webhook.construct_event`). The rules, as Stripe's SDKs apply them:
//! - each `v1` is hex(HMAC-SHA256(key = the whole `whsec_…` secret as bytes, message =
//!   `"<t>.<raw body>"`)); other schemes (`v0`, …) are ignored;
//! - any `v1` matching any configured secret passes, so a secret can be rotated: the PSP
//!   signs with old and new during the overlap, and hakken may be configured with both;
//! - the comparison is constant-time ([`hmac::Mac::verify_slice`]);
//! - a timestamp older than the tolerance (300 s by default) is refused, so a captured
//!   request cannot be replayed later. Stricter than the SDKs, a timestamp further than
//!   the tolerance in the *future* is refused too: it could only come from a wrong clock
//!   or a forger, and accepting it would stretch the replay window.
//!
//! Pure: the caller passes the clock (`now_unix`), so tests need no sleeping.
//! Errors name what was wrong for metrics and 400 messages, never a secret or the body.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's default tolerance between the signed timestamp and the receiver's clock.
pub const TOLERANCE_DEFAULT_S: i64 = 300;

/// A longer `Stripe-Signature` header is refused as malformed before any HMAC is
/// computed: Stripe's carry a timestamp and one or two signatures (~150 bytes), so this
/// leaves room for rotation and bounds the work an unauthenticated request can cause.
pub const HEADER_BYTES_MAX: usize = 2048;

/// The bytes of one `v1` signature (SHA-256), 64 hex digits in the header.
const SIGNATURE_BYTES: usize = 32;

/// The signed timestamp of a verified webhook, in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn unix_seconds(self) -> i64 {
        self.0
    }
}

/// Why a webhook's signature was refused. [`SignatureError::code`] is a stable, bounded
/// name for metric labels and error bodies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    MissingHeader,
    #[error("the Stripe-Signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1Signature,
    #[error("no v1 signature matches the body for any configured webhook secret")]
    Mismatch,
    #[error("the signed timestamp is {age_s} s old, more than the tolerance of {tolerance_s} s")]
    Stale { age_s: i64, tolerance_s: i64 },
    #[error("the signed timestamp is {ahead_s} s in the future, more than the tolerance of {tolerance_s} s")]
    Future { ahead_s: i64, tolerance_s: i64 },
    /// A configuration error rather than a bad request: nothing can be verified.
    #[error("no webhook secret is configured")]
    NoSecret,
}

impl SignatureError {
    /// A stable name for each kind of refusal (metric label, `error.code` of a 400).
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader => "signature_missing",
            SignatureError::MalformedHeader(_) => "signature_malformed",
            SignatureError::NoV1Signature => "signature_no_v1",
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::Stale { .. } => "signature_stale",
            SignatureError::Future { .. } => "signature_future",
            SignatureError::NoSecret => "signature_no_secret",
        }
    }
}

/// Checks a webhook's `Stripe-Signature` header (`None` when the request had none)
/// against its raw `body` and the configured `secrets` (any may match; empty ones are
/// skipped), at `now_unix`, with `tolerance_s` either way. Returns the signed timestamp.
///
/// The order of checks follows the SDKs: header shape, then signatures, then the
/// timestamp, so "stale" or "future" is only ever said of an authentic request.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[impl AsRef<str>],
    now_unix: i64,
    tolerance_s: i64,
) -> Result<Timestamp, SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader)?;
    let parsed = parse_header(header)?;
    if parsed.v1_items == 0 {
        return Err(SignatureError::NoV1Signature);
    }
    let mut any_secret = false;
    let mut matched = false;
    for secret in secrets.iter().map(AsRef::as_ref).filter(|secret| !secret.is_empty()) {
        any_secret = true;
        let mac = signed_payload_mac(secret, parsed.timestamp, body);
        // Every signature against every secret, no early exit: the time taken says nothing
        // about which one matched.
        for signature in &parsed.v1 {
            matched |= mac.clone().verify_slice(signature).is_ok();
        }
    }
    if !any_secret {
        return Err(SignatureError::NoSecret);
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let age_s = now_unix.saturating_sub(parsed.timestamp);
    if age_s > tolerance_s {
        return Err(SignatureError::Stale { age_s, tolerance_s });
    }
    if -age_s > tolerance_s {
        return Err(SignatureError::Future { ahead_s: -age_s, tolerance_s });
    }
    Ok(Timestamp(parsed.timestamp))
}

/// The `Stripe-Signature` header Stripe would send for `body` signed with `secret` at
/// `t`: `t=<t>,v1=<hex>`. For tests and for the fake PSP's side of the protocol.
pub fn sign(body: &[u8], secret: &str, t: i64) -> String {
    let tag = signed_payload_mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", to_hex(&tag))
}

/// The MAC over `"<t>.<body>"` keyed by the secret's bytes, ready to finalize or verify.
fn signed_payload_mac(secret: &str, t: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// A parsed header: the timestamp and the `v1` signatures that are well-formed hex.
#[derive(Debug, PartialEq, Eq)]
struct ParsedHeader {
    timestamp: i64,
    v1: Vec<[u8; SIGNATURE_BYTES]>,
    /// `v1` items in the header, well-formed or not: one that is not hex is a mismatch,
    /// not a missing signature.
    v1_items: usize,
}

/// Splits `t=…,v1=…,v0=…` as the SDKs do: comma-separated `key=value` items (keys exact,
/// no spaces), the first `t` is the timestamp, every `v1` a candidate signature, other
/// items ignored. A `v1` that is not 64 lowercase hex digits can never match what Stripe
/// sends, so it is dropped rather than refused (a well-formed one beside it may match).
fn parse_header(header: &str) -> Result<ParsedHeader, SignatureError> {
    if header.trim().is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    if header.len() > HEADER_BYTES_MAX {
        return Err(SignatureError::MalformedHeader("too long"));
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    let mut v1_items = 0;
    for item in header.split(',') {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        match key {
            "t" if timestamp.is_none() => timestamp = Some(parse_timestamp(value)?),
            "v1" => {
                v1_items += 1;
                v1.extend(from_hex::<SIGNATURE_BYTES>(value));
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MalformedHeader("no t= timestamp"))?;
    Ok(ParsedHeader { timestamp, v1, v1_items })
}

/// A Unix timestamp in seconds: ASCII digits only (no sign, no spaces), at most 12.
fn parse_timestamp(value: &str) -> Result<i64, SignatureError> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(SignatureError::MalformedHeader("t= is not a Unix timestamp"));
    }
    value.parse().map_err(|_| SignatureError::MalformedHeader("t= is not a Unix timestamp"))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

/// `N` bytes from exactly `2 N` lowercase hex digits (as Stripe writes them, and as the
/// SDKs compare them: as text), else `None`.
fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let high = lower_hex_digit(pair[0])?;
        let low = lower_hex_digit(pair[1])?;
        *byte = u8::try_from(high << 4 | low).ok()?;
    }
    Some(bytes)
}

fn lower_hex_digit(digit: u8) -> Option<u32> {
    match digit {
        b'0'..=b'9' => Some(u32::from(digit - b'0')),
        b'a'..=b'f' => Some(u32::from(digit - b'a') + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret_one";
    const OTHER: &str = "whsec_test_secret_two";
    const NOW: i64 = 1_767_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    /// Verifies `header` over [`BODY`] with `secrets` at [`NOW`] and the default tolerance,
    /// and compares the outcome (the timestamp, or the error's code) with `expected`.
    fn check(header: Option<&str>, secrets: &[&str], expected: Result<i64, &str>) {
        let outcome = verify(header, BODY, secrets, NOW, TOLERANCE_DEFAULT_S)
            .map(Timestamp::unix_seconds)
            .map_err(|error| error.code());
        assert_eq!(outcome, expected, "header {header:?}, secrets {secrets:?}");
    }

    fn v1(secret: &str, t: i64, body: &[u8]) -> String {
        sign(body, secret, t).split_once(",v1=").expect("sign makes t=..,v1=..").1.to_string()
    }

    #[test]
    fn verify_table() {
        let good = sign(BODY, SECRET, NOW);
        let other = v1(OTHER, NOW, BODY);
        let mine = v1(SECRET, NOW, BODY);
        check(Some(&good), &[SECRET], Ok(NOW));
        // Rotation on the PSP's side (two v1, either order) and on hakken's (two secrets).
        check(Some(&format!("t={NOW},v1={other},v1={mine}")), &[SECRET], Ok(NOW));
        check(Some(&format!("t={NOW},v1={mine},v1={other}")), &[OTHER], Ok(NOW));
        check(Some(&good), &[OTHER, SECRET], Ok(NOW));
        check(Some(&good), &["", SECRET], Ok(NOW));
        // Other schemes and stray items are ignored; keys and hex are exact, as the SDKs
        // read them (a space makes " v1" another key, uppercase hex another signature).
        check(Some(&format!("t={NOW},v0=abcdef,v1={mine}")), &[SECRET], Ok(NOW));
        check(Some(&format!("t={NOW},v1={mine},,junk")), &[SECRET], Ok(NOW));
        check(Some(&format!("t={NOW}, v1={mine}")), &[SECRET], Err("signature_no_v1"));
        check(Some(&format!("t={NOW},v1={}", mine.to_uppercase())), &[SECRET], Err("signature_mismatch"));
        // The first t counts; a second one cannot move the signed timestamp.
        check(Some(&format!("t={NOW},v1={mine},t=1")), &[SECRET], Ok(NOW));
        check(Some(&format!("t={},v1={mine},t={NOW}", NOW + 1)), &[SECRET], Err("signature_mismatch"));
        // Within the tolerance either way; beyond it refused either way.
        check(Some(&sign(BODY, SECRET, NOW - 300)), &[SECRET], Ok(NOW - 300));
        check(Some(&sign(BODY, SECRET, NOW + 300)), &[SECRET], Ok(NOW + 300));
        check(Some(&sign(BODY, SECRET, NOW - 301)), &[SECRET], Err("signature_stale"));
        check(Some(&sign(BODY, SECRET, NOW + 301)), &[SECRET], Err("signature_future"));
        check(Some(&sign(BODY, SECRET, 0)), &[SECRET], Err("signature_stale"));
        // A forged or stale-and-forged header is a mismatch: staleness only of authentic ones.
        check(Some(&sign(BODY, OTHER, NOW)), &[SECRET], Err("signature_mismatch"));
        check(Some(&sign(BODY, OTHER, NOW - 1000)), &[SECRET], Err("signature_mismatch"));
        check(Some(&sign(b"{}", SECRET, NOW)), &[SECRET], Err("signature_mismatch"));
        check(Some(&format!("t={NOW},v1={}", &mine[..62])), &[SECRET], Err("signature_mismatch"));
        check(Some(&format!("t={NOW},v1={}zz", &mine[..62])), &[SECRET], Err("signature_mismatch"));
        check(Some(&format!("t={NOW},v1=")), &[SECRET], Err("signature_mismatch"));
        check(Some(&format!("t={NOW},v0={mine}")), &[SECRET], Err("signature_no_v1"));
        check(Some(&format!("t={NOW}")), &[SECRET], Err("signature_no_v1"));
        // Header shape.
        check(None, &[SECRET], Err("signature_missing"));
        check(Some("  "), &[SECRET], Err("signature_missing"));
        check(Some(&format!("v1={mine}")), &[SECRET], Err("signature_malformed"));
        check(Some(&format!("t=-5,v1={mine}")), &[SECRET], Err("signature_malformed"));
        check(Some(&format!("t=+{NOW},v1={mine}")), &[SECRET], Err("signature_malformed"));
        check(Some(&format!("t=9999999999999,v1={mine}")), &[SECRET], Err("signature_malformed"));
        check(Some(&format!("t={NOW};v1={mine}")), &[SECRET], Err("signature_malformed"));
        check(Some(&format!("t,v1={mine}")), &[SECRET], Err("signature_malformed"));
        check(Some("garbage"), &[SECRET], Err("signature_malformed"));
        check(Some(&format!("t={NOW},{}", "v1=00,".repeat(400))), &[SECRET], Err("signature_malformed"));
        // No secret configured is its own error, whatever the header.
        check(Some(&good), &[], Err("signature_no_secret"));
        check(Some(&good), &[""], Err("signature_no_secret"));
    }

    /// A known answer computed independently (`printf '1700000000.{}' | openssl dgst
    /// -sha256 -hmac whsec_known`), so `sign` cannot agree with `verify` by sharing a bug.
    #[test]
    fn sign_matches_a_known_answer() {
        assert_eq!(
            sign(b"{}", "whsec_known", 1_700_000_000),
            "t=1700000000,v1=56172812b342033a9e9ff107171d9094c9573602923ebd235441051bdf6e8129"
        );
    }

    #[test]
    fn errors_never_show_the_secret_or_body() {
        let error = verify(Some(&sign(BODY, OTHER, NOW)), BODY, &[SECRET], NOW, 300).expect_err("mismatch");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("whsec") && !text.contains("evt_1"), "{text}");
    }

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 4] = [0x00, 0x7f, 0x80, 0xff];
        assert_eq!(to_hex(&bytes), "007f80ff");
        assert_eq!(from_hex::<4>("007f80ff"), Some(bytes));
        assert_eq!(from_hex::<4>("007F80ff"), None);
        assert_eq!(from_hex::<4>("007f80f"), None);
        assert_eq!(from_hex::<4>("007f80fg"), None);
        assert_eq!(from_hex::<4>("+07f80ff"), None);
    }
}
