#!/usr/bin/env bash
# The cluster benchmark: orders/s and order p99 of trusted confirms (hold + confirm) in
# cluster mode beside a single node, in one sitting, against one server build.
#
# - single: one `hakken serve` on its own store (sync durability), as in
#   benches/payments.sh.
# - cluster: 3 `nats-server` (JetStream, R3) and 3 `hakken serve` nodes (cluster mode,
#   local store async: the log's quorum is the durability point); the load goes to the
#   event's owner, so no redirects are counted.
#
# CPU: hakken (the single node, or all 3 nodes) runs on core 0; the load tool and the
# NATS servers on core 1. So both arms give hakken the same core, and the cluster's
# Raft work is charged to the other. Each rate gets fresh processes and stores.
# During each cluster run the standbys' lag is sampled from their metrics (max printed).
#
# Usage: benches/cluster.sh              (from the repository root)
#   RATES="1000 2000 4000" DURATION=15s benches/cluster.sh
set -euo pipefail

RATES=${RATES:-"1000 2000 3000 4000 6000"}
ARMS=${ARMS:-"single cluster"}
DURATION=${DURATION:-12s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-256}
OUT=${OUT:-$(mktemp -d -t hakken-cluster-bench.XXXXXX)}
SALES_TOKEN=bench-sales-token
BASE_PORT=${BASE_PORT:-18180}

cd "$(dirname "$0")/.."
. benches/lib.sh
if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release -p hakken-api -p hakken-loadtest
fi
bin=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT"
trap cleanup EXIT

hakken_env() { # NAME: the environment every arm's node has
    echo HAKKEN_LOG=warn HAKKEN_SALES_TOKEN="$SALES_TOKEN" HAKKEN_PAYMENTS_PROVIDER=external \
        HAKKEN_PRIVACY_KEYS="bench:$(head -c 32 /dev/urandom | base64)" HAKKEN_PRIVACY_ACTIVE_KEY=bench
}

start_single() {
    rm -rf "$OUT/single-data"
    env $(hakken_env) HAKKEN_DATA_DIR="$OUT/single-data" HAKKEN_LISTEN="127.0.0.1:$BASE_PORT" \
        HAKKEN_METRICS_LISTEN="127.0.0.1:$((BASE_PORT + 100))" \
        taskset -c 0 "$bin/hakken" --config config/bench.toml serve > "$OUT/single.log" 2>&1 &
    pids+=($!)
    owner_pid=$!
    owner_port=$BASE_PORT
    wait_for "http://127.0.0.1:$BASE_PORT/v1/events/bench"
}

start_cluster() {
    rm -rf "$OUT/nats" "$OUT"/node-*
    mkdir -p "$OUT/nats"
    local routes="" urls="" index
    for index in 0 1 2; do
        routes+="\"nats-route://127.0.0.1:$((BASE_PORT + 40 + index))\", "
        urls+="nats://127.0.0.1:$((BASE_PORT + 30 + index)),"
    done
    for index in 0 1 2; do
        cat > "$OUT/nats/n$index.conf" <<CONF
server_name: n$index
host: 127.0.0.1
port: $((BASE_PORT + 30 + index))
jetstream { store_dir: "$OUT/nats/n$index", max_memory_store: 64MB, max_file_store: 4GB }
cluster { name: hakken-bench, listen: "127.0.0.1:$((BASE_PORT + 40 + index))", routes: [${routes%, }] }
CONF
        taskset -c 1 nats-server --config "$OUT/nats/n$index.conf" > "$OUT/nats/n$index.log" 2>&1 &
        pids+=($!)
    done
    node_pids=()
    for index in 0 1 2; do
        env $(hakken_env) HAKKEN_DATA_DIR="$OUT/node-$index" HAKKEN_LISTEN="127.0.0.1:$((BASE_PORT + 10 + index))" \
            HAKKEN_METRICS_LISTEN="127.0.0.1:$((BASE_PORT + 110 + index))" HAKKEN_STORAGE_DURABILITY=async \
            HAKKEN_CLUSTER_ENABLED=true HAKKEN_CLUSTER_NODE="node-$index" HAKKEN_CLUSTER_NATS="${urls%,}" \
            taskset -c 0 "$bin/hakken" --config config/bench.toml serve > "$OUT/node-$index.log" 2>&1 &
        pids+=($!)
        node_pids+=($!)
    done
    # The owner is the node that answers the event itself (the others redirect).
    for _ in $(seq 600); do
        for index in 0 1 2; do
            local port=$((BASE_PORT + 10 + index))
            if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/events/bench")" = 200 ]; then
                owner_port=$port
                owner_pid=${node_pids[$index]}
                owner_index=$index
                return 0
            fi
        done
        sleep 0.1
    done
    echo "no node took the event" >&2
    return 1
}

sample_lag() { # FILE: the standbys' lag every 0.5 s until killed
    while true; do
        for index in 0 1 2; do
            [ "$index" = "$owner_index" ] && continue
            curl -s "http://127.0.0.1:$((BASE_PORT + 110 + index))/metrics" |
                awk '/^hakken_cluster_standby_lag_messages/ { print $2 }'
        done >> "$1"
        sleep 0.5
    done
}

run() { # ARM RATE
    local arm=$1 rate=$2 sampler=""
    if [ "$arm" = cluster ]; then
        : > "$OUT/$arm-$rate.lag"
        sample_lag "$OUT/$arm-$rate.lag" &
        sampler=$!
    fi
    taskset -c 1 "$bin/hakken-loadtest" run --target "http://127.0.0.1:$owner_port" --event bench \
        --rate "$rate" --warmup "$WARMUP" --duration "$DURATION" --connections "$CONNECTIONS" \
        --threads 1 --quiet --drain-timeout 30s --server-pid "$owner_pid" --run-id "$arm-$rate" \
        --sales-token "$SALES_TOKEN" --json "$OUT/$arm-$rate.json" > "$OUT/$arm-$rate.txt"
    if [ -n "$sampler" ]; then kill "$sampler"; wait "$sampler" 2>/dev/null || true; fi
}

# Alternate the arms rate by rate, so a slow minute on the VM hits both.
for rate in $RATES; do
    for arm in $ARMS; do
        "start_$arm"
        run "$arm" "$rate"
        cleanup
    done
done

python3 - "$OUT" "$ARMS" $RATES <<'EOF'
import json, os, sys
out, arms, rates = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
print(f"{'arm':<8} {'offered/s':>9} {'orders/s':>9} {'not ok':>7} {'order p50':>10} {'order p99':>10} {'standby lag max':>16}")
best = {}
for arm in arms:
    for rate in rates:
        with open(f"{out}/{arm}-{rate}.json") as f:
            report = json.load(f)
        order = next(step for step in report["steps"] if step["step"] == "order")
        bad = (order["sent"] - order["success"]) / order["sent"] if order["sent"] else 1.0
        lag = ""
        if os.path.exists(f"{out}/{arm}-{rate}.lag"):
            values = [float(line) for line in open(f"{out}/{arm}-{rate}.lag") if line.strip()]
            lag = f"{max(values):.0f} seqs" if values else "-"
        goodput = report["completed_per_second"]
        p50 = order["latency_success_us"]["p50"] / 1000
        p99 = order["latency_success_us"]["p99"] / 1000
        print(f"{arm:<8} {float(rate):>9.0f} {goodput:>9.1f} {bad*100:>6.2f}% {p50:>8.2f} ms {p99:>8.2f} ms {lag:>16}")
        if bad < 0.01 and goodput > best.get(arm, (-1, 0))[0]:
            best[arm] = (goodput, p99)
for arm, (goodput, p99) in best.items():
    print(f"capacity {arm}: {goodput:.1f} orders/s (order p99 {p99:.2f} ms at that rate)")
if "single" in best and "cluster" in best:
    print(f"cluster/single: {best['cluster'][0] / best['single'][0]:.2f}")
EOF
echo "reports in $OUT"
