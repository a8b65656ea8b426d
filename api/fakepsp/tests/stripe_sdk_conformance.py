"""Drives hakken-fakepsp with the official `stripe` Python SDK (pinned by the Rust test,
tests/stripe_sdk.rs, which starts the fake and runs this script).

The point: the fake is only useful while it answers as Stripe does. Every call below goes
through the SDK's own request encoding, response parsing and error mapping, and every
webhook the fake delivers is checked with `stripe.Webhook.construct_event`.

Usage: stripe_sdk_conformance.py API_BASE SECRET_KEY PUBLISHABLE_KEY SECRET[,SECRET...]
Exits non-zero with a message on the first failed check.
"""

import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stripe

API_BASE, SECRET_KEY, PUBLISHABLE_KEY, SECRETS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
WAIT_SECONDS = 20


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_error(error_class, call, **attributes):
    try:
        call()
    except error_class as error:
        for name, value in attributes.items():
            check(getattr(error, name) == value, f"{error_class.__name__}.{name} = {getattr(error, name)!r}, expected {value!r}")
        return error
    except stripe.StripeError as error:
        raise AssertionError(f"expected {error_class.__name__}, got {type(error).__name__}: {error}")
    raise AssertionError(f"expected {error_class.__name__}, the call succeeded")


def control(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(API_BASE + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for(condition, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Receiver:
    """A webhook endpoint that verifies every delivery with the SDK."""

    def __init__(self):
        self.lock = threading.Lock()
        self.verified = []  # (event id, type) per accepted delivery
        self.rejected = 0  # deliveries refused because the signature did not verify
        self.expected_secrets = list(SECRETS)
        self.problems = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                payload = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
                receiver.handle(self.headers, payload, self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"

    def handle(self, headers, payload, handler):
        signature = headers.get("Stripe-Signature")
        with self.lock:
            expected = list(self.expected_secrets)
        try:
            if headers.get("User-Agent") != "Stripe/1.0 (+https://stripe.com/docs/webhooks)":
                raise AssertionError(f"User-Agent {headers.get('User-Agent')!r}")
            if not headers.get("Content-Type", "").startswith("application/json"):
                raise AssertionError(f"Content-Type {headers.get('Content-Type')!r}")
            # Every configured secret verifies on its own (one v1 per secret, as in a rotation).
            events = [stripe.Webhook.construct_event(payload, signature, secret) for secret in expected]
            # A wrong secret and an altered body must fail.
            for wrong_secret, body in (("whsec_not_the_secret", payload), (expected[0], payload + " ")):
                try:
                    stripe.Webhook.construct_event(body, signature, wrong_secret)
                    raise AssertionError("a wrong secret or altered body verified")
                except stripe.SignatureVerificationError:
                    pass
        except stripe.SignatureVerificationError:
            with self.lock:
                self.rejected += 1
            handler.send_response(400)
            handler.end_headers()
            return
        except Exception as error:  # a broken delivery is a failure of the fake, reported at the end
            with self.lock:
                self.problems.append(repr(error))
            handler.send_response(500)
            handler.end_headers()
            return
        event = events[0]
        with self.lock:
            self.verified.append((event.id, event.type))
        handler.send_response(200)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"{}")

    def count(self, event_id):
        with self.lock:
            return sum(1 for verified_id, _ in self.verified if verified_id == event_id)


def all_events():
    return list(stripe.Event.list(limit=100).auto_paging_iter())


def create_manual(amount=12900, hold="h1", **extra):
    return stripe.PaymentIntent.create(
        amount=amount,
        currency="eur",
        capture_method="manual",
        metadata={"hakken_hold": hold, "hakken_event": "e1"},
        **extra,
    )


def main():
    stripe.api_key = SECRET_KEY
    stripe.api_base = API_BASE
    stripe.max_network_retries = 0  # a retry would hide what the fake answered
    receiver = Receiver()
    control("POST", "/_fake/webhook_url", {"url": receiver.url})

    # Manual capture: create (idempotent), confirm, capture, refund.
    intent = create_manual(idempotency_key="conformance-create-1")
    check(intent.object == "payment_intent" and intent.id.startswith("pi_"), f"created {intent}")
    check(intent.status == "requires_payment_method", intent.status)
    check(intent.livemode is False and intent.amount == 12900 and intent.currency == "eur", intent)
    check(intent.capture_method == "manual", intent.capture_method)
    check(intent.metadata["hakken_hold"] == "h1", intent.metadata)
    check(intent.client_secret.startswith(intent.id + "_secret_"), intent.client_secret)
    check(intent.last_response.headers.get("Idempotent-Replayed") is None, "a first answer marked replayed")

    replay = create_manual(idempotency_key="conformance-create-1")
    check(replay.id == intent.id, "an idempotent create made a second intent")
    check(replay.last_response.headers.get("Idempotent-Replayed") == "true", "no Idempotent-Replayed: true")
    expect_error(stripe.IdempotencyError, lambda: create_manual(amount=13000, idempotency_key="conformance-create-1"))

    confirmed = stripe.PaymentIntent.confirm(intent.id, payment_method="pm_card_visa")
    check(confirmed.status == "requires_capture", confirmed.status)
    check(confirmed.amount_capturable == 12900 and confirmed.latest_charge.startswith("ch_"), confirmed)
    captured = stripe.PaymentIntent.capture(intent.id, idempotency_key="conformance-capture-1")
    check(captured.status == "succeeded" and captured.amount_received == 12900, captured)
    stripe.PaymentIntent.capture(intent.id, idempotency_key="conformance-capture-1")  # replayed, not a second capture
    again = expect_error(stripe.InvalidRequestError, lambda: stripe.PaymentIntent.capture(intent.id), code="payment_intent_unexpected_state")
    check(again.http_status == 400, again.http_status)
    refund = stripe.Refund.create(payment_intent=intent.id, amount=2900)
    check(refund.object == "refund" and refund.id.startswith("re_"), refund)
    check(refund.status == "succeeded" and refund.amount == 2900 and refund.payment_intent == intent.id, refund)
    check(stripe.Refund.retrieve(refund.id).amount == 2900, "refund retrieve")
    rest = stripe.Refund.create(payment_intent=intent.id)
    check(rest.amount == 10000, rest.amount)
    expect_error(stripe.InvalidRequestError, lambda: stripe.Refund.create(payment_intent=intent.id), code="charge_already_refunded")

    # Decline: CardError, the intent back to requires_payment_method.
    declined = create_manual(hold="h2")
    error = expect_error(
        stripe.CardError,
        lambda: stripe.PaymentIntent.confirm(declined.id, payment_method="pm_card_chargeDeclined"),
        code="card_declined",
        http_status=402,
    )
    check(error.json_body["error"]["decline_code"] == "generic_decline", error.json_body)
    after = stripe.PaymentIntent.retrieve(declined.id)
    check(after.status == "requires_payment_method", after.status)
    check(after.last_payment_error.code == "card_declined", after.last_payment_error)

    # Stripe.js's way: the publishable key with the client secret.
    browser = create_manual(hold="h3")
    paid = stripe.PaymentIntent.confirm(browser.id, payment_method="pm_card_visa", client_secret=browser.client_secret, api_key=PUBLISHABLE_KEY)
    check(paid.status == "requires_capture", paid.status)
    other = create_manual(hold="h4")
    expect_error(
        stripe.InvalidRequestError,
        lambda: stripe.PaymentIntent.confirm(other.id, payment_method="pm_card_visa", client_secret=browser.client_secret, api_key=PUBLISHABLE_KEY),
    )
    expect_error(stripe.AuthenticationError, lambda: create_manual(api_key=PUBLISHABLE_KEY))
    expect_error(stripe.AuthenticationError, lambda: create_manual(api_key="sk_test_not_the_key_at_all"))

    # Cancel: from requires_capture (a void), and never twice.
    canceled = stripe.PaymentIntent.cancel(browser.id, cancellation_reason="abandoned")
    check(canceled.status == "canceled" and canceled.cancellation_reason == "abandoned", canceled)
    expect_error(stripe.InvalidRequestError, lambda: stripe.PaymentIntent.cancel(browser.id), code="payment_intent_unexpected_state")
    check(stripe.PaymentIntent.cancel(other.id).status == "canceled", "cancel of a fresh intent")

    # Bad input is Stripe's invalid_request_error.
    expect_error(stripe.InvalidRequestError, lambda: stripe.PaymentIntent.create(amount=10, currency="eur"), code="amount_too_small")
    expect_error(stripe.InvalidRequestError, lambda: stripe.PaymentIntent.create(amount=1000, currency="euro"), param="currency")
    expect_error(stripe.InvalidRequestError, lambda: stripe.PaymentIntent.create(amount=1000, currency="eur", colour="red"), code="parameter_unknown")
    expect_error(stripe.InvalidRequestError, lambda: stripe.PaymentIntent.retrieve("pi_does_not_exist"), code="resource_missing", http_status=404)

    # 3-D Secure: requires_action until the challenge is passed (the fake's control API).
    secure = create_manual(hold="h5")
    challenged = stripe.PaymentIntent.confirm(secure.id, payment_method="pm_card_authenticationRequired")
    check(challenged.status == "requires_action" and challenged.next_action is not None, challenged.status)
    control("POST", f"/_fake/payment_intents/{secure.id}/authenticate", {"succeed": True})
    check(stripe.PaymentIntent.retrieve(secure.id).status == "requires_capture", "3DS passed")

    # Pay late: confirm answers processing; the authorization arrives later.
    control("POST", "/_fake/faults", {"pay_late_ms": 300})
    late = create_manual(hold="h6")
    processing = stripe.PaymentIntent.confirm(late.id, payment_method="pm_card_visa")
    check(processing.status == "processing", processing.status)
    control("POST", "/_fake/faults", {"pay_late_ms": 0})
    wait_for(lambda: stripe.PaymentIntent.retrieve(late.id).status == "requires_capture", "the late authorization")

    # An injected 500 is stored under its idempotency key, as Stripe stores it.
    control("POST", "/_fake/faults", {"fail_next": 1, "api_fault_match": "POST /v1/payment_intents"})
    expect_error(stripe.APIError, lambda: create_manual(hold="h7", idempotency_key="conformance-fail-1"), http_status=500)
    expect_error(stripe.APIError, lambda: create_manual(hold="h7", idempotency_key="conformance-fail-1"), http_status=500)
    check(create_manual(hold="h7", idempotency_key="conformance-fail-2").status == "requires_payment_method", "after the fault")

    # Retrieve and list (newest first, paginated by the SDK).
    check(stripe.PaymentIntent.retrieve(intent.id).status == "succeeded", "retrieve")
    page = stripe.PaymentIntent.list(limit=2)
    check(page.object == "list" and len(page.data) == 2 and page.has_more, page)
    listed = [listed.id for listed in stripe.PaymentIntent.list(limit=3).auto_paging_iter()]
    check(len(listed) == len(set(listed)) and intent.id in listed and listed.index(late.id) < listed.index(intent.id), listed)

    # Events: listable, retrievable, one per state change.
    events = all_events()
    succeeded = [event for event in stripe.Event.list(type="payment_intent.succeeded").auto_paging_iter()]
    check([event.data.object.id for event in succeeded] == [intent.id], f"succeeded events {succeeded}")
    check(stripe.Event.retrieve(succeeded[0].id).type == "payment_intent.succeeded", "event retrieve")
    check(all(event.id.startswith("evt_") and event.livemode is False for event in events), "event ids")
    types = {event.type for event in events}
    for kind in ("payment_intent.created", "payment_intent.amount_capturable_updated", "payment_intent.payment_failed",
                 "payment_intent.succeeded", "payment_intent.canceled", "charge.refunded"):
        check(kind in types, f"no {kind} event")

    # Every event is delivered, signed so that the SDK verifies it.
    wait_for(lambda: all(receiver.count(event.id) >= 1 for event in events), "every event delivered")

    stats = control("GET", "/_fake/stats")
    check(stats["payment_intents"][intent.id]["captures"] == 1, stats["payment_intents"][intent.id])
    check(stats["payment_intents"][intent.id]["refunds"] == 2, stats["payment_intents"][intent.id])

    # Duplicates: every event twice, each copy verifies.
    control("POST", "/_fake/faults", {"webhook_duplicates": 1})
    twice = create_manual(hold="h8")
    stripe.PaymentIntent.confirm(twice.id, payment_method="pm_card_visa")
    stripe.PaymentIntent.capture(twice.id)
    control("POST", "/_fake/faults", {"webhook_duplicates": 0})
    new_events = [event for event in all_events() if event.data.object.id == twice.id]
    check(len(new_events) == 3, f"events of the duplicated intent: {[event.type for event in new_events]}")
    wait_for(lambda: all(receiver.count(event.id) == 2 for event in new_events), "two deliveries of each event")

    # A receiver with the wrong secret refuses the deliveries; the fake retries until it
    # is fixed, and the retried delivery then verifies.
    with receiver.lock:
        receiver.expected_secrets = ["whsec_wrong_secret"]
    wrong = create_manual(hold="h9")
    wait_for(lambda: receiver.rejected >= 2, "deliveries refused with the wrong secret")
    with receiver.lock:
        receiver.expected_secrets = list(SECRETS)
    created_event = [event for event in all_events() if event.data.object.id == wrong.id][0]
    wait_for(lambda: receiver.count(created_event.id) == 1, "the retried delivery")
    check(control("GET", "/_fake/stats")["webhooks"]["failed_attempts"] >= 2, "failed attempts not counted")

    check(not receiver.problems, f"deliveries that broke the receiver: {receiver.problems}")
    print(f"conformance ok: stripe {stripe.VERSION}, {len(receiver.verified)} verified webhook deliveries")


if __name__ == "__main__":
    main()
