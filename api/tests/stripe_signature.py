"""Stripe-Signature headers made and judged by the official `stripe` Python SDK.

Run by tests/stripe_signature.rs, which checks that hakken's verifier agrees with
`stripe.Webhook.construct_event` on every case printed here. The SDK's own signing code
makes the headers (`WebhookSignature.generate_signature_header`, and
`WebhookSignature._compute_signature` for a header with two v1 during a secret
rotation), so hakken is held to what Stripe's code does, not to a second reading of
the docs.

Prints one JSON document on stdout:
  {"sdk_version", "now", "tolerance_s",
   "cases": [{"name", "body", "header" (null: no header), "secrets", "sdk_accepts",
              "sdk_error"}],
   "signatures": [{"body", "secret", "t", "header"}]}
A case's `sdk_accepts` is whether construct_event accepts it with any one of `secrets`
(hakken is configured with all of them at once). Exits 3 if the SDK is missing.
"""

import json
import sys
import time

STRIPE_VERSION = "16.1.0"

try:
    import stripe
except ImportError:
    sys.stderr.write(
        f"the `stripe` Python SDK is missing: python3 -m pip install 'stripe=={STRIPE_VERSION}'\n"
    )
    sys.exit(3)

if stripe.VERSION != STRIPE_VERSION:
    sys.stderr.write(
        f"stripe {stripe.VERSION} is installed, the test pins {STRIPE_VERSION}: "
        f"python3 -m pip install 'stripe=={STRIPE_VERSION}'\n"
    )
    sys.exit(3)

from stripe import WebhookSignature  # noqa: E402

TOLERANCE_S = 300
OLD = "whsec_old_0123456789abcdefghijklmnopqrstuv"
NEW = "whsec_new_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
OTHER = "whsec_attacker_guess"


def event_body(event_id, amount=12900, name="Zoë Müller"):
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": "hakken-create-h1-1767000000000"},
        "type": "payment_intent.amount_capturable_updated",
        "data": {
            "object": {
                "id": "pi_3TestAbc",
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": amount,
                "currency": "eur",
                "status": "requires_capture",
                "metadata": {"hakken_hold": "h-1", "note": name},
            }
        },
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def v1(body, secret, t):
    return WebhookSignature._compute_signature(f"{t}.{body}", secret)


def sdk_judges(body, header, secrets):
    """construct_event with each secret: (accepted by any, the last error message)."""
    error = None
    for secret in secrets:
        try:
            stripe.Webhook.construct_event(body, header, secret, tolerance=TOLERANCE_S)
            return True, None
        except stripe.SignatureVerificationError as refusal:
            error = str(refusal)
    return False, error


def main():
    now = int(time.time())
    body = event_body("evt_1Valid")
    other_body = event_body("evt_1Valid", amount=1)
    sign = WebhookSignature.generate_signature_header
    cases = [
        ("valid", body, sign(body, NEW, now), [NEW]),
        ("valid_unicode_body", event_body("evt_2"), sign(event_body("evt_2"), NEW, now), [NEW]),
        ("rotation_two_v1_hakken_has_new", body, f"t={now},v1={v1(body, OLD, now)},v1={v1(body, NEW, now)}", [NEW]),
        ("rotation_two_v1_hakken_has_old", body, f"t={now},v1={v1(body, OLD, now)},v1={v1(body, NEW, now)}", [OLD]),
        ("rotation_hakken_has_both", body, sign(body, NEW, now), [OLD, NEW]),
        ("v0_beside_v1", body, f"t={now},v0={v1(body, OTHER, now)},v1={v1(body, NEW, now)}", [NEW]),
        ("within_tolerance_past", body, sign(body, NEW, now - TOLERANCE_S + 60), [NEW]),
        ("stale", body, sign(body, NEW, now - TOLERANCE_S - 60), [NEW]),
        ("within_tolerance_future", body, sign(body, NEW, now + TOLERANCE_S - 60), [NEW]),
        ("future", body, sign(body, NEW, now + TOLERANCE_S + 3600), [NEW]),
        ("altered_body", other_body, sign(body, NEW, now), [NEW]),
        ("wrong_secret", body, sign(body, OTHER, now), [NEW]),
        ("wrong_secret_stale", body, sign(body, OTHER, now - 3600), [NEW]),
        ("timestamp_moved", body, f"t={now + 1},v1={v1(body, NEW, now)}", [NEW]),
        ("only_v0", body, f"t={now},v0={v1(body, NEW, now)}", [NEW]),
        ("uppercase_hex", body, f"t={now},v1={v1(body, NEW, now).upper()}", [NEW]),
        ("no_timestamp", body, f"v1={v1(body, NEW, now)}", [NEW]),
        ("timestamp_not_a_number", body, f"t=soon,v1={v1(body, NEW, now)}", [NEW]),
        ("garbage_header", body, "garbage", [NEW]),
        ("empty_header", body, "", [NEW]),
        ("no_header", body, None, [NEW]),
    ]
    out = []
    for name, case_body, header, secrets in cases:
        accepts, error = sdk_judges(case_body, header, secrets)
        out.append(
            {
                "name": name,
                "body": case_body,
                "header": header,
                "secrets": secrets,
                "sdk_accepts": accepts,
                "sdk_error": error,
            }
        )
    signatures = [
        {"body": b, "secret": s, "t": t, "header": sign(b, s, t)}
        for b, s, t in [("{}", NEW, 1700000000), (body, OLD, now), (event_body("evt_3"), NEW, 0)]
    ]
    json.dump(
        {
            "sdk_version": stripe.VERSION,
            "now": now,
            "tolerance_s": TOLERANCE_S,
            "cases": out,
            "signatures": signatures,
        },
        sys.stdout,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
