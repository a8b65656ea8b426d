# Shell helpers of the benchmark scripts (sourced by benches/payments.sh,
# benches/notifications.sh and benches/scrape.sh).

wait_for() { # URL: until it answers 2xx, at most 60 s
    for _ in $(seq 600); do
        if curl -sf -o /dev/null "$1"; then return 0; fi
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}

# Processes a script started; `cleanup` kills them (the scripts trap it on EXIT).
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}
