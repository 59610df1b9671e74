#!/usr/bin/env bash
# Two hub binaries, A and B, measured with vhub-bench in the same sitting:
# for every (sessions, frame size) case and every round, A then B, each on a
# freshly started hub (release builds, 2 shards, io_uring when it is there).
# Alternating spreads the machine's noise over both; read the medians.
#
#   scripts/ab-bench.sh OLD/vhub NEW/vhub [ROUNDS] [SECONDS]
#
# Prints one line per run (label, sessions, size, frames/s, Gbit/s, p99,
# lost, hub CPU %, the hub's drops by reason) and writes them to $OUT/ab.tsv. Needs jq.
set -euo pipefail
cd "$(dirname "$0")/.."

A=${1:?hub binary A}
B=${2:?hub binary B}
ROUNDS=${3:-3}
SECS=${4:-5}
BENCH=${BENCH:-./target/release/vhub-bench}
OUT=${OUT:-$(mktemp -d /tmp/vhub-ab.XXXXXX)}
CASES=${CASES:-"2:64 2:1514 100:64 100:1514"}

. scripts/free-port.sh

HUB_PID=""
cleanup() { [[ -n $HUB_PID ]] && kill "$HUB_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# run LABEL BINARY SESSIONS SIZE
run() {
    local label=$1 bin=$2 n=$3 size=$4 port mport drops
    port=$(free_port)
    mport=$(free_port)
    cat > "$OUT/hub.toml" <<EOF
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$mport"
admin_socket = "off"
cert_dir = "$OUT/certs"
shards = 2

[limits]
max_handshakes_per_address = 256

[[hub]]
name = "DEFAULT"
anonymous = true
EOF
    VHUB_LOG=warn NO_COLOR=1 "$bin" --config "$OUT/hub.toml" > "$OUT/hub-$label.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    "$BENCH" --hub "127.0.0.1:$port" -n "$n" --size "$size" --duration "$SECS" \
        --baseline false --hub-pid "$HUB_PID" --json > "$OUT/run.json"
    # Where the hub dropped frames (reason=count, non-zero only).
    drops=$(curl -sf --max-time 5 "http://127.0.0.1:$mport/metrics" |
        awk -F'[{}"= ]+' '/^vhub_frames_dropped_total\{/ && $NF > 0 { printf "%s%s=%d", sep, $3, $NF; sep="," }')
    kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=""
    # One line: label n size frames/s Gbit/s p99_ms lost hub_cpu_%
    jq -r --arg l "$label" --arg n "$n" --arg s "$size" \
        --arg d "${drops:--}" \
        '[$l, $n, $s, (.hub.frames_per_sec | floor), (.hub.gbit_per_sec * 100 | round / 100),
          (.hub.latency_us_p99 / 1000), .hub.lost, (.hub.hub_cpu_percent // 0 | round), $d] | @tsv' \
        "$OUT/run.json" | tee -a "$OUT/ab.tsv"
}

printf "label\tsessions\tsize\tframes/s\tGbit/s\tp99_ms\tlost\thub_cpu_%%\tdrops\n" | tee "$OUT/ab.tsv"
for c in $CASES; do
    n=${c%%:*}; size=${c##*:}
    for r in $(seq "$ROUNDS"); do
        run A "$A" "$n" "$size"
        run B "$B" "$n" "$size"
    done
done
echo "results: $OUT/ab.tsv"
