#!/usr/bin/env bash
# The demo on-sale rehearsed with and without a waiting room (issue 15's measure): the
# same waiting-room queue file (`generate --queue`, 200,000 buyers, spike, seed 7, 40%
# of them joining in the last EARLY before the opening) replayed against the demo event
# opening LEAD after the server starts, once with no `[queue]` (buyers hold at their
# arrival, as in the README's rehearsal) and once behind one (`[queue]` with
# ADMIT_MIN..ADMIT_MAX admissions/s; buyers join, poll as told, buy when admitted).
# Payments are `external` (confirm on trust), so the two arms differ only in the room.
# hakken on core 0, the load tool on core 1, each arm on a fresh server and store.
#
# Prints, per arm: seats sold, how long the sale took (first seat to 99% of the arm's
# seats), hold and confirm p99 (from when due: an admitted buyer is due when let in),
# 503/429 replies; and for the room: queue wait, poll p99, ETA error, fairness, and how
# long after the last seat pollers were told `sold_out`. The draw's audit entry is
# printed too.
#
# Usage: benches/waiting_room.sh    (from the repository root)
#   BUYERS=50000 ADMIT_MAX=4000 DRAIN=120s benches/waiting_room.sh
set -euo pipefail

BUYERS=${BUYERS:-200000}
SEED=${SEED:-7}
LEAD=${LEAD:-45}
EARLY=${EARLY:-30s}
ADMIT_MIN=${ADMIT_MIN:-50}
ADMIT_MAX=${ADMIT_MAX:-2000}
ARMS=${ARMS:-"direct room"}
# Long-poll connections of the load tool in the room arm (0: buyers only poll).
LONG_POLLS=${LONG_POLLS:-0}
# The drain after the last arrival is cut here, so a room that stalls still reports
# (its buyers left waiting are counted as such).
DRAIN=${DRAIN:-300s}
OUT=${OUT:-$(mktemp -d -t hakken-waiting-room-bench.XXXXXX)}
HAKKEN_PORT=${HAKKEN_PORT:-18080}
METRICS_PORT=${METRICS_PORT:-18190}
ADMIN_TOKEN=bench-admin-token

cd "$(dirname "$0")/.."
. benches/lib.sh
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p hakken-api -p hakken-loadtest
fi
bin=${CARGO_TARGET_DIR:-target}/release
root=$(pwd)
mkdir -p "$OUT"

trap cleanup EXIT

# The demo event opening LEAD seconds from now; with `[queue]` for the room arm.
event_file() { # ARM
    local opens_at
    opens_at=$(date -u -d "+$LEAD seconds" +%Y-%m-%dT%H:%M:%SZ)
    sed -e "s/^on_sale_opens_at = .*/on_sale_opens_at = $opens_at/" config/events/demo.toml > "$OUT/$1.toml"
    if [ "$1" = room ]; then
        printf '\n[queue]\nopens_before_sale_s = 600\nadmit_per_s_min = %s\nadmit_per_s_max = %s\n' \
            "$ADMIT_MIN" "$ADMIT_MAX" >> "$OUT/$1.toml"
    fi
}

start_hakken() { # ARM
    rm -rf "$OUT/data"
    event_file "$1"
    HAKKEN_DATA_DIR="$OUT/data" HAKKEN_LISTEN="127.0.0.1:$HAKKEN_PORT" HAKKEN_METRICS_LISTEN="127.0.0.1:$METRICS_PORT" \
        HAKKEN_LOG=warn HAKKEN_EVENTS="$OUT/$1.toml" HAKKEN_VENUES="$root/config/venues/hakken-stadium.toml" \
        HAKKEN_PAYMENTS_PROVIDER=external HAKKEN_ADMIN_TOKEN="$ADMIN_TOKEN" \
        taskset -c 0 "$bin/hakken" serve > "$OUT/$1-hakken.log" 2>&1 &
    hakken_pid=$!
    pids+=($hakken_pid)
    wait_for "http://127.0.0.1:$HAKKEN_PORT/v1/events/demo-2027"
}

for arm in $ARMS; do
    start_hakken "$arm"
    if [ ! -f "$OUT/onsale.jsonl" ]; then
        "$bin/hakken-loadtest" generate --target "http://127.0.0.1:$HAKKEN_PORT" --event demo-2027 \
            --seed "$SEED" --buyers "$BUYERS" --shape spike --queue --queue-early "$EARLY" --out "$OUT/onsale.jsonl"
    fi
    mode=off
    if [ "$arm" = room ]; then mode=on; fi
    taskset -c 1 "$bin/hakken-loadtest" replay "$OUT/onsale.jsonl" --target "http://127.0.0.1:$HAKKEN_PORT" \
        --waiting-room "$mode" --queue-long-polls "$LONG_POLLS" --drain-timeout "$DRAIN" --run-id "$arm" --json "$OUT/$arm.json" > "$OUT/$arm.txt" || true
    if [ "$arm" = room ]; then
        curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$HAKKEN_PORT/v1/events/demo-2027/audit" \
            > "$OUT/room-audit.json"
    fi
    cleanup
done

python3 - "$OUT" "$ARMS" <<'PY'
import json, sys
out, arms = sys.argv[1], sys.argv[2].split()

def step(report, name):
    return next((s for s in report["steps"] if s["step"] == name), None)

def p99_ms(report, name):
    s = step(report, name)
    return s["latency_success_us"]["p99"] / 1000 if s and s.get("latency_success_us") else float("nan")

def sale_seconds(report):
    points = report["timeline"]["points"]
    total = sum(p["seats_sold"] for p in points)
    first = next((p["t_seconds"] for p in points if p["seats_sold"]), None)
    sold = 0
    for p in points:
        sold += p["seats_sold"]
        if total and sold >= 0.99 * total:
            return p["t_seconds"] + report["timeline"]["interval_seconds"] - first
    return float("nan")

def refusals(report):
    return sum(s.get("counts", {}).get("retried_after_503", 0) + s.get("counts", {}).get("rejected_busy_503", 0)
               + s.get("counts", {}).get("retried_after_429", 0) + s.get("counts", {}).get("rejected_rate_limited_429", 0)
               for s in report["steps"] if s["step"] not in ("queue_join", "queue_poll"))

reports = {arm: json.load(open(f"{out}/{arm}.json")) for arm in arms}
print(f"{'arm':<7} {'seats sold':>10} {'sale s':>7} {'hold p99':>9} {'confirm p99':>12} {'503/429':>8} {'verdict':>8}")
for arm, r in reports.items():
    verdict = r.get("verdict") or {}
    passed = "PASS" if verdict and not verdict.get("violations") else "FAIL"
    print(f"{arm:<7} {r['seats_sold']:>10} {sale_seconds(r):>7.0f} {p99_ms(r, 'hold'):>7.1f}ms "
          f"{p99_ms(r, 'confirm'):>10.1f}ms {refusals(r):>8} {passed:>8}")
if "direct" in reports and "room" in reports:
    d, q = reports["direct"], reports["room"]
    print(f"room/direct: seats sold {q['seats_sold'] / d['seats_sold']:.4f}, sale took {sale_seconds(q) / sale_seconds(d):.2f}x")
if "room" in reports:
    w = reports["room"]["waiting_room"]
    print(f"room: joined {w['joined']}, admitted {w['admitted']}, told sold out {w['told_sold_out']}, "
          f"expired {w['expired']}, still waiting {w['still_waiting']}, failed {w['failed']}")
    print(f"  queue wait s p50 {w['queue_wait_seconds']['p50']} p99 {w['queue_wait_seconds']['p99']}; "
          f"poll p99 {w['poll_latency_us']['p99'] / 1000:.2f} ms ({w['polls']} polls); "
          f"join p99 {w['join_latency_us']['p99'] / 1000:.2f} ms")
    e = w["eta_error"]
    print(f"  ETA error median {e['median']} p90 {e['p90']} signed median {e['signed_median']} ({e['judged']} judged)")
    print(f"  fairness: early rho {w['fairness_early']['spearman']} ({w['fairness_early']['admitted']}), "
          f"late rho {w['fairness_late']['spearman']} ({w['fairness_late']['admitted']})")
    print(f"  503/429 to admitted buyers {w['refusals_503_429_after_admission']}; sold out first told at {w['sold_out_at']} "
          f"({w['sold_out_first_lag_seconds']} s after the last order), last at {w['sold_out_last_at']}, "
          f"{w['sold_out_lag_seconds']} s after the last order; seen by pollers p50 "
          f"{w['sold_out_seen_lag_seconds']['p50']} max {w['sold_out_seen_lag_seconds']['max']} s")
    print(f"  long polls {w['long_polls']} answered, {w['long_polls_changed']} with a new state")
    try:
        audit = json.load(open(f"{out}/room-audit.json"))
        draw = [e["detail"] for e in audit.get("entries", []) if e.get("action") == "queue_draw"]
        print(f"  audit: {draw}")
    except (OSError, ValueError):
        print("  audit: not read")
PY
echo "reports in $OUT"
