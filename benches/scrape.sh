#!/usr/bin/env bash
# What scraping /metrics every second costs the sale: the trusted-order benchmark
# (hold + confirm, `run --sales-token`, benchmark arena) at RATE, alternately with no
# scraper and with a real Prometheus (Debian's) scraping hakken every second with the
# shipped rules (config/sre/), PAIRS times each, every run on a fresh server and store.
# hakken on core 0; the load tool and Prometheus on core 1. Prometheus runs in both arms
# (unscraped, its target is a port nobody listens on), so the two differ only in hakken
# being scraped, not in what else shares the load tool's core. Prints orders/s, hakken's
# CPU per order and the size of one scrape (bytes, series) of the run.
#
# Usage: benches/scrape.sh    (from the repository root)
#   RATE=10000 PAIRS=3 DURATION=20s benches/scrape.sh
set -euo pipefail

RATE=${RATE:-10000}
PAIRS=${PAIRS:-2}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-256}
OUT=${OUT:-$(mktemp -d -t hakken-scrape-bench.XXXXXX)}
HAKKEN_PORT=${HAKKEN_PORT:-18080}
METRICS_PORT=${METRICS_PORT:-18190}
PROMETHEUS_PORT=${PROMETHEUS_PORT:-18191}
NOBODY_PORT=${NOBODY_PORT:-18192}
RENDERS=${RENDERS:-200}
SALES_TOKEN=bench-sales-token

cd "$(dirname "$0")/.."
. benches/lib.sh
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p hakken-api -p hakken-loadtest
fi
bin=${CARGO_TARGET_DIR:-target}/release
root=$(pwd)
mkdir -p "$OUT"

trap cleanup EXIT

start_hakken() { # NAME
    rm -rf "$OUT/data"
    HAKKEN_DATA_DIR="$OUT/data" HAKKEN_LISTEN="127.0.0.1:$HAKKEN_PORT" HAKKEN_METRICS_LISTEN="127.0.0.1:$METRICS_PORT" \
        HAKKEN_LOG=warn HAKKEN_SALES_TOKEN="$SALES_TOKEN" \
        HAKKEN_PRIVACY_KEYS="bench:$(head -c 32 /dev/urandom | base64)" HAKKEN_PRIVACY_ACTIVE_KEY=bench \
        taskset -c 0 "$bin/hakken" --config config/bench.toml serve > "$OUT/$1-hakken.log" 2>&1 &
    hakken_pid=$!
    pids+=($hakken_pid)
    wait_for "http://127.0.0.1:$HAKKEN_PORT/v1/events/bench"
}

start_prometheus() { # NAME PORT: the shipped config, every second, against 127.0.0.1:PORT
    rm -rf "$OUT/tsdb"
    sed -e "s/scrape_interval: 5s/scrape_interval: 1s/" -e "s/scrape_timeout: 4s/scrape_timeout: 900ms/" \
        -e "s/evaluation_interval: 5s/evaluation_interval: 1s/" \
        -e "s#rules/#$root/config/sre/rules/#" -e "s/127.0.0.1:9190/127.0.0.1:$2/" \
        config/sre/prometheus.yml > "$OUT/prometheus.yml"
    taskset -c 1 prometheus --config.file="$OUT/prometheus.yml" --storage.tsdb.path="$OUT/tsdb" \
        --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" > "$OUT/$1-prometheus.log" 2>&1 &
    pids+=($!)
    wait_for "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
}

run() { # NAME
    taskset -c 1 "$bin/hakken-loadtest" run --target "http://127.0.0.1:$HAKKEN_PORT" --event bench \
        --rate "$RATE" --warmup "$WARMUP" --duration "$DURATION" --connections "$CONNECTIONS" \
        --threads 1 --quiet --drain-timeout 30s --server-pid "$hakken_pid" --run-id "$1" \
        --sales-token "$SALES_TOKEN" --json "$OUT/$1.json" > "$OUT/$1.txt"
    curl -s "http://127.0.0.1:$METRICS_PORT/metrics" > "$OUT/$1.metrics"
}

# What one scrape costs hakken, without the sale's noise: the CPU (utime + stime, from
# /proc) of RENDERS scrapes one after another on the server of the last unscraped run
# (sale over, every series there), written to $OUT/render.cpu as "scrapes seconds".
render_cost() {
    local tick before after
    tick=$(getconf CLK_TCK)
    before=$(awk '{print $14 + $15}' "/proc/$hakken_pid/stat")
    for _ in $(seq "$RENDERS"); do curl -s -o /dev/null "http://127.0.0.1:$METRICS_PORT/metrics"; done
    after=$(awk '{print $14 + $15}' "/proc/$hakken_pid/stat")
    echo "$RENDERS $(python3 -c "print(($after - $before) / $tick)")" > "$OUT/render.cpu"
}

for pair in $(seq "$PAIRS"); do
    start_hakken "off-$pair"; start_prometheus "off-$pair" "$NOBODY_PORT"; run "off-$pair"
    if [ "$pair" = "$PAIRS" ]; then render_cost; fi
    cleanup
    start_hakken "on-$pair"; start_prometheus "on-$pair" "$METRICS_PORT"; run "on-$pair"
    scrapes=$(curl -s -G "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" --data-urlencode "query=count_over_time(scrape_samples_scraped{job=\"hakken\"}[1h])" \
        | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(sum(float(x["value"][1]) for x in r)))')
    echo "$scrapes" > "$OUT/on-$pair.scrapes"
    cleanup
done

# One scrape of the demo stadium (config/hakken.toml, every section and category) after
# a short sale on it, so its histograms have samples too.
rm -rf "$OUT/demo-data"
HAKKEN_DATA_DIR="$OUT/demo-data" HAKKEN_LISTEN="127.0.0.1:$HAKKEN_PORT" HAKKEN_METRICS_LISTEN="127.0.0.1:$METRICS_PORT" \
    HAKKEN_LOG=warn HAKKEN_SALES_TOKEN="$SALES_TOKEN" \
    taskset -c 0 "$bin/hakken" serve > "$OUT/demo-hakken.log" 2>&1 &
hakken_pid=$!
pids+=($hakken_pid)
wait_for "http://127.0.0.1:$HAKKEN_PORT/v1/events/demo-2027"
taskset -c 1 "$bin/hakken-loadtest" run --target "http://127.0.0.1:$HAKKEN_PORT" --event demo-2027 \
    --rate 500 --warmup 1s --duration 5s --connections 32 --threads 1 --quiet --drain-timeout 10s \
    --sales-token "$SALES_TOKEN" > "$OUT/demo.txt"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" > "$OUT/demo.metrics"
cleanup

python3 - "$OUT" "$PAIRS" <<'PY'
import json, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def load(name):
    report = json.load(open(f"{out}/{name}.json"))
    order = next(step for step in report["steps"] if step["step"] == "order")
    server = report.get("server") or {}
    return report["completed_per_second"], server.get("cpu_us_per_completed", 0.0)
print(f"{'run':<6} {'orders/s':>9} {'hakken CPU/order':>17}")
sums = {"off": [0.0, 0.0], "on": [0.0, 0.0]}
for pair in range(1, pairs + 1):
    for mode in ("off", "on"):
        goodput, cpu = load(f"{mode}-{pair}")
        sums[mode][0] += goodput; sums[mode][1] += cpu
        print(f"{mode}-{pair:<3} {goodput:>9.1f} {cpu:>14.1f} µs")
off, on = [v / pairs for v in sums["off"]], [v / pairs for v in sums["on"]]
print(f"mean: scraped every second {on[0]:.1f} orders/s against {off[0]:.1f} unscraped "
      f"({(on[0] / off[0] - 1) * 100:+.2f}%), CPU per order {on[1]:.1f} against {off[1]:.1f} µs ({(on[1] / off[1] - 1) * 100:+.2f}%)")
text = open(f"{out}/on-{pairs}.metrics").read()
series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
print(f"one scrape after a run: {len(text.encode())} bytes, {series} series; "
      f"scrapes by Prometheus in the last run: {open(f'{out}/on-{pairs}.scrapes').read().strip()}")
renders, seconds = open(f"{out}/render.cpu").read().split()
per_scrape_ms = float(seconds) / int(renders) * 1000
print(f"hakken CPU per scrape (bench arena, {renders} scrapes in a row): {per_scrape_ms:.1f} ms, "
      f"{per_scrape_ms / 10:.2f}% of a core at one scrape a second")
demo = open(f"{out}/demo.metrics").read()
demo_series = sum(1 for line in demo.splitlines() if line and not line.startswith("#"))
print(f"one scrape of the demo stadium after a short sale: {len(demo.encode())} bytes, {demo_series} series")
PY
echo "reports in $OUT"
