#!/usr/bin/env bash
# The notifications benchmark (issue 13): the 10,000 orders/s HTTP benchmark with the
# buyer's email and one webhook endpoint on, beside the same load with notifications off,
# and again with the SMTP server down for a minute mid-load. hakken runs on core 0, the
# load tool on core 1; the load tool is also the SMTP server and the webhook receiver
# (`run --smtp-sink --webhook-sink`), so it knows when each acknowledged order's email
# and webhook arrived.
#
# Three runs, each against a fresh hakken on a fresh data dir (config/bench.toml):
#   (a) notifications off: no SMTP host, no endpoint (outbox entries are still written
#       with each order, as always; nothing delivers them);
#   (b) email to the tool's SMTP sink + one `[[notifications.webhooks]]` endpoint
#       (order.confirmed) at the tool's webhook sink;
#   (c) like (b), the SMTP sink down (listener closed, sessions dropped) from OUTAGE_START
#       for OUTAGE, in a run OUTAGE_START + OUTAGE + AFTER_OUTAGE long.
# Then a table: orders/s and order p99 of each, the ratios b/a and c/a (targets:
# throughput within 5%, order p99 within 20%), notification lag p50/p99 (order
# acknowledged -> email received), emails/s while a backlog drained (c: from the SMTP
# sink's return; b and c: after the load), and hakken's CPU per email in the drain after
# the load (its CPU then / the emails received then: the relay alone, the sale over).
#
# What to expect: the relay runs at the lowest CPU priority, so while the load keeps
# hakken's core busy the backlog grows and drains after the load; the sale itself should
# not notice, which is what the ratios check. A ticket email is ~11 KB (two inline QR
# PNGs, base64) and cost ~1.5 ms of hakken CPU on 2026-12-03, ~650 emails/s to the sink
# (README, Benchmarks: Notifications). The first smoke run of this script found 1.4-2.3
# ms per email in qrcode's mask scoring and miniz, and ~150 emails/s from lettre's
# transport waiting on Nagle; both were fixed since (hakken_notify::qr, smtp).
#
# Usage: benches/notifications.sh              (from the repository root)
#   RATE=10000 DURATION=30s OUTAGE=60s benches/notifications.sh
#   NO_BUILD=1 CARGO_TARGET_DIR=target-rel RATE=300 DURATION=5s OUTAGE_START=1s OUTAGE=3s AFTER_OUTAGE=2s \
#       benches/notifications.sh                 (a smoke test: seconds, not minutes)
# Writes every run's JSON report and logs to $OUT (default: a temporary directory).
# Exit 1 if a run's notification verdict failed (an acknowledged order never emailed
# or webhooked within NOTIFY_DRAIN_TIMEOUT after its load and outage).
set -euo pipefail

RATE=${RATE:-10000}
DURATION=${DURATION:-30s}            # measured window of (a) and (b)
WARMUP=${WARMUP:-3s}
OUTAGE=${OUTAGE:-60s}                # (c): the SMTP sink is down this long ...
OUTAGE_START=${OUTAGE_START:-10s}    # ... from this far into the measured window ...
AFTER_OUTAGE=${AFTER_OUTAGE:-30s}    # ... and the load goes on this long after it
# After the load (and the outage), how long notices may take to arrive. hakken's relay
# retries with exponential backoff (full jitter, up to notifications.relay.retry_max_ms,
# 15 min by default), so after a long outage the last emails can take minutes.
NOTIFY_DRAIN_TIMEOUT=${NOTIFY_DRAIN_TIMEOUT:-600s}
CONNECTIONS=${CONNECTIONS:-256}
OUT=${OUT:-$(mktemp -d -t hakken-notifications-bench.XXXXXX)}
HAKKEN_PORT=${HAKKEN_PORT:-18080}
SMTP_PORT=${SMTP_PORT:-18025}
WEBHOOK_PORT=${WEBHOOK_PORT:-18026}
FROM="Hakken Bench <tickets@bench.example>"

cd "$(dirname "$0")/.."
. benches/lib.sh
repo=$(pwd)
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p hakken-api -p hakken-loadtest
fi
bin=${CARGO_TARGET_DIR:-target}/release
case $bin in /*) ;; *) bin="$repo/$bin" ;; esac
mkdir -p "$OUT"

seconds() { # 60s, 500ms, 2m or a bare number of seconds -> seconds
    awk -v d="$1" 'BEGIN {
        if (d ~ /ms$/) { sub(/ms$/, "", d); print d / 1000 }
        else if (d ~ /m$/) { sub(/m$/, "", d); print d * 60 }
        else { sub(/s$/, "", d); print d + 0 } }'
}
outage_from=$(seconds "$OUTAGE_START")
outage_to=$(awk -v a="$outage_from" -v b="$(seconds "$OUTAGE")" 'BEGIN { print a + b }')
outage_duration=$(awk -v a="$outage_to" -v b="$(seconds "$AFTER_OUTAGE")" 'BEGIN { print a + b }')

# Webhooks are configured in the file only: bench.toml's content plus one endpoint. The
# copy lives in $OUT, so the paths bench.toml gives relative to itself are set by
# environment instead (templates_dir included, which resolves against the file too).
webhook_secret="whsec_$(head -c 32 /dev/urandom | base64)"
cp config/bench.toml "$OUT/hakken-off.toml"
{
    cat config/bench.toml
    printf '\n[[notifications.webhooks]]\nurl = "http://127.0.0.1:%s/hooks/hakken"\nsecret = "%s"\nevents = ["order.confirmed"]\n' \
        "$WEBHOOK_PORT" "$webhook_secret"
} > "$OUT/hakken-notify.toml"

hakken_pid=
cleanup() {
    if [ -n "$hakken_pid" ]; then kill "$hakken_pid" 2>/dev/null || true; fi
    wait 2>/dev/null || true
}
trap cleanup EXIT

start_hakken() { # NAME CONFIG [VAR=VALUE...]: a fresh hakken on core 0
    local name=$1 config=$2
    shift 2
    rm -rf "$OUT/data-$name"
    env HAKKEN_DATA_DIR="$OUT/data-$name" HAKKEN_LISTEN="127.0.0.1:$HAKKEN_PORT" HAKKEN_METRICS_LISTEN=127.0.0.1:0 \
        HAKKEN_LOG=warn HAKKEN_PRIVACY_KEYS="bench:$(head -c 32 /dev/urandom | base64)" HAKKEN_PRIVACY_ACTIVE_KEY=bench \
        HAKKEN_VENUES="$repo/config/venues/bench-arena.toml" HAKKEN_EVENTS="$repo/config/events/bench.toml" \
        HAKKEN_NOTIFICATIONS_TEMPLATES_DIR="$repo/config/notifications/templates" "$@" \
        taskset -c 0 "$bin/hakken" --config "$config" serve > "$OUT/hakken-$name.log" 2>&1 &
    hakken_pid=$!
    wait_for "http://127.0.0.1:$HAKKEN_PORT/v1/events/bench"   # 503 while recovering
}

stop_hakken() {
    kill "$hakken_pid"
    wait "$hakken_pid" 2>/dev/null || true
    hakken_pid=
}

failed=0
run() { # NAME DURATION [FLAGS...]: one run of the load tool on core 1, report in $OUT/NAME.json
    local name=$1 duration=$2
    shift 2
    local status=0
    taskset -c 1 "$bin/hakken-loadtest" run --target "http://127.0.0.1:$HAKKEN_PORT" --event bench \
        --rate "$RATE" --warmup "$WARMUP" --duration "$duration" --connections "$CONNECTIONS" \
        --threads 1 --quiet --server-pid "$hakken_pid" --run-id "$name" --json "$OUT/$name.json" "$@" \
        > "$OUT/$name.txt" || status=$?
    if [ "$status" -eq 1 ]; then
        failed=1
        grep '^FAIL' "$OUT/$name.txt" | sed "s/^/$name: /" >&2
    elif [ "$status" -ne 0 ]; then
        echo "$name: the load tool could not run (exit $status); see $OUT/$name.txt" >&2
        exit 2
    fi
}

notify_env=(HAKKEN_NOTIFICATIONS_EMAIL_SMTP_HOST=127.0.0.1 HAKKEN_NOTIFICATIONS_EMAIL_SMTP_PORT="$SMTP_PORT"
    HAKKEN_NOTIFICATIONS_EMAIL_TLS=none HAKKEN_NOTIFICATIONS_EMAIL_FROM="$FROM")
sinks=(--smtp-sink "127.0.0.1:$SMTP_PORT" --webhook-sink "127.0.0.1:$WEBHOOK_PORT" --webhook-secret "$webhook_secret"
    --notify-drain-timeout "$NOTIFY_DRAIN_TIMEOUT")

start_hakken off "$OUT/hakken-off.toml"
run a-off "$DURATION"
stop_hakken

start_hakken notify "$OUT/hakken-notify.toml" "${notify_env[@]}"
run b-notify "$DURATION" "${sinks[@]}"
stop_hakken

start_hakken outage "$OUT/hakken-notify.toml" "${notify_env[@]}"
run c-outage "${outage_duration}s" "${sinks[@]}" --smtp-sink-outage "${outage_from}s..${outage_to}s"
stop_hakken

python3 - "$OUT" "$OUTAGE" <<'EOF'
import json, sys
out, outage = sys.argv[1], sys.argv[2]

def load(name):
    with open(f"{out}/{name}.json") as f:
        report = json.load(f)
    order = next(step for step in report["steps"] if step["step"] == "order")
    return report, order

runs = [("a-off", "(a) notifications off"), ("b-notify", "(b) email + webhook"),
        ("c-outage", f"(c) (b), SMTP down {outage}")]
base_report, base_order = load("a-off")
base_rate, base_p99 = base_report["completed_per_second"], base_order["latency_success_us"]["p99"]
ms = lambda us: f"{us / 1000:.1f} ms"
print(f"{'run':<26} {'orders/s':>9} {'order p99':>10} {'thr/a':>6} {'p99/a':>6} {'lag p50':>9} {'lag p99':>9} "
      f"{'emails/s draining':>18} {'hakken CPU/email':>17}")
for name, label in runs:
    report, order = load(name)
    rate, p99 = report["completed_per_second"], order["latency_success_us"]["p99"]
    notes = report.get("notifications")
    row = f"{label:<26} {rate:>9.1f} {ms(p99):>10}"
    if notes is None:
        print(row + f" {'-':>6} {'-':>6}")
        continue
    lag = notes["email"]["lag_us"]
    after_load = notes["after_load"]
    draining = notes["after_outage"] or after_load
    cpu = after_load.get("server_cpu_us_per_email")
    print(row + f" {rate / base_rate:>6.3f} {p99 / base_p99:>6.2f} {ms(lag['p50']):>9} {ms(lag['p99']):>9} "
          f"{draining['emails_per_second']:>18.0f} {(f'{cpu:.1f} µs' if cpu else '-'):>17}")
print("targets: orders/s within 5% of (a) (thr/a >= 0.95), order p99 within 20% (p99/a <= 1.20)")
for name, label in runs[1:]:
    report, _ = load(name)
    notes = report["notifications"]
    email, webhook = notes["email"], notes["webhook"]
    verdict = "PASS" if not notes["failures"] else "FAIL"
    print(f"{label}: {verdict}; email {email['told_orders']}/{email['acknowledged_orders']} orders told, "
          f"{email['never_told']} never, {email['duplicates']} duplicates, {email['unexpected']} unexpected "
          f"({notes['confirms_in_doubt']} confirms in doubt), {email['bytes_received'] / max(email['received'], 1):.0f} "
          f"bytes/email; webhook {webhook['told_orders']}/{webhook['acknowledged_orders']}, lag p50 "
          f"{ms(webhook['lag_us']['p50'])} p99 {ms(webhook['lag_us']['p99'])}, {webhook['duplicates']} duplicates")
    for key, what in (("after_outage", "after the SMTP sink came back"), ("after_load", "after the load")):
        drain = notes.get(key)
        if drain:
            cpu = drain.get("server_cpu_us_per_email")
            print(f"    {what}: backlog {drain['backlog']} emails, {'drained' if drain['drained'] else 'NOT drained'} "
                  f"in {drain['seconds']:.1f} s, {drain['emails']} emails = {drain['emails_per_second']:.0f}/s"
                  + (f", hakken {drain['server_cpu_seconds']:.2f} s CPU = {cpu:.1f} µs/email" if cpu else ""))
EOF
echo "reports in $OUT"
exit "$failed"
