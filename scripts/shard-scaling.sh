#!/usr/bin/env bash
# Scaling with cores, in one sitting: the same vhub-bench load (pattern
# pairs) against a release hub with 1 shard and with 2, and with 2 shards
# once more with both ends of every pair on one shard (`same`: no frame
# crosses) and on different shards (`cross`: every frame is handed over).
# Every run gets a fresh hub; within a round the configurations alternate
# (and the order flips every round) so the machine's drift spreads over all.
#
#   scripts/shard-scaling.sh [ROUNDS] [SECONDS]
#
# Per run it prints frames/s (total and per shard), Gbit/s, p99, the hub's
# CPU seconds per million frames switched (utime + stime of the hub process
# from /proc over the whole bench invocation, and of each shard thread),
# and from the hub's own metrics the fraction of frames handed to another
# shard, frames per hand-off batch and wake-ups per batch. The 1-minute
# load is checked before each run (waits up to LOAD_WAIT seconds for it to
# fall below MAX_LOAD) and printed beside the numbers. A summary of the
# medians per configuration follows. Needs jq, curl, python3.
#
# Environment: CASES ("SESSIONS:SIZE[:RATE] ...", RATE in frames/s per
# sender, default 0 = closed loop), CONFIGS ("SHARDS:PLACEMENT ..."), HUB
# and BENCH (binaries), OUT (directory), MAX_LOAD, LOAD_WAIT. A fixed rate
# that every configuration reaches compares CPU per frame at equal load:
# closed-loop runs differ in throughput, and per-round costs spread over
# fewer frames at a lower rate.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
SECS=${2:-5}
HUB=${HUB:-./target/release/vhub}
BENCH=${BENCH:-./target/release/vhub-bench}
OUT=${OUT:-$(mktemp -d /tmp/vhub-scaling.XXXXXX)}
CASES=${CASES:-"2:64 100:64 2:1514 100:1514"}
CONFIGS=${CONFIGS:-"1:any 2:any 2:same 2:cross"}
MAX_LOAD=${MAX_LOAD:-1.0}
LOAD_WAIT=${LOAD_WAIT:-180}
TCK=$(getconf CLK_TCK)

for b in "$HUB" "$BENCH"; do
    [[ -x $b ]] || { echo "$b missing: cargo build --release -p hub -p bench" >&2; exit 2; }
done
for t in jq curl python3; do
    command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 2; }
done

. scripts/free-port.sh

HUB_PID=""
cleanup() { [[ -n $HUB_PID ]] && kill "$HUB_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# CPU seconds of the hub: "total shard-0 shard-1" (a missing shard: 0).
cpu_of() {
    local pid=$1 total s0=0 s1=0 t comm ticks
    total=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")
    for t in /proc/"$pid"/task/*; do
        comm=$(cat "$t/comm" 2>/dev/null) || continue
        ticks=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "$t/stat" 2>/dev/null) || continue
        case $comm in
            shard-0) s0=$ticks ;;
            shard-1) s1=$ticks ;;
        esac
    done
    echo "$total $s0 $s1"
}

# The value of one metric line (exact name with labels), or fail.
metric() {
    local v
    v=$(awk -v m="$2" '$1 == m { print $2; found = 1 } END { exit !found }' "$1") ||
        { echo "metric $2 missing in $1" >&2; return 1; }
    echo "$v"
}

wait_quiet() {
    local waited=0 load
    while :; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN { exit !(l < m) }' || ((waited >= LOAD_WAIT)); then
            echo "$load"
            return
        fi
        sleep 10
        waited=$((waited + 10))
    done
}

# run ROUND SHARDS PLACEMENT SESSIONS SIZE RATE
run() {
    local round=$1 shards=$2 place=$3 n=$4 size=$5 rate=$6 port mport load c0 c1 m
    port=$(free_port)
    mport=$(free_port)
    cat > "$OUT/hub.toml" <<EOF
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$mport"
admin_socket = "$OUT/admin.sock"
cert_dir = "$OUT/certs"
shards = $shards

[limits]
max_handshakes_per_address = 256

[[hub]]
name = "DEFAULT"
anonymous = true
EOF
    load=$(wait_quiet)
    VHUB_LOG=warn NO_COLOR=1 "$HUB" --config "$OUT/hub.toml" > "$OUT/hub.log" 2>&1 &
    HUB_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    c0=$(cpu_of "$HUB_PID")
    "$BENCH" --hub "127.0.0.1:$port" -n "$n" --size "$size" --rate "$rate" --duration "$SECS" \
        --baseline false --hub-pid "$HUB_PID" --admin-socket "$OUT/admin.sock" \
        --placement "$place" --json > "$OUT/run.json"
    c1=$(cpu_of "$HUB_PID")
    m="$OUT/metrics.txt"
    curl -sf --max-time 5 "http://127.0.0.1:$mport/metrics" > "$m"
    kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=""
    local fin hf hb wk qf
    fin=$(metric "$m" 'vhub_frames_total{direction="in"}')
    hf=$(metric "$m" vhub_handoff_frames_total)
    hb=$(metric "$m" vhub_handoff_batches_total)
    wk=$(metric "$m" vhub_shard_wakeups_total)
    qf=$(metric "$m" 'vhub_frames_dropped_total{reason="queue_full"}')
    read -r t0 a0 b0 <<< "$c0"
    read -r t1 a1 b1 <<< "$c1"
    jq -r --arg r "$round" --arg s "$shards" --arg p "$place" --arg n "$n" --arg z "$size" --arg rate "$rate" \
        --arg load "$load" --argjson tck "$TCK" --argjson fin "$fin" --argjson hf "$hf" \
        --argjson hb "$hb" --argjson wk "$wk" --argjson qf "$qf" \
        --argjson cpu "$(( t1 - t0 ))" --argjson c0 "$(( a1 - a0 ))" --argjson c1 "$(( b1 - b0 ))" \
        '.hub as $h | ($cpu / $tck) as $cs | [
          $r, $s, $p, $n, $z, $rate,
          ($h.frames_per_sec | floor), ($h.frames_per_sec / ($s | tonumber) | floor),
          ($h.gbit_per_sec * 100 | round / 100), ($h.latency_us_p99 / 1000),
          ($cs * 100 | round / 100),
          (if $fin > 0 then ($cs / $fin * 1e6 * 1000 | round / 1000) else "-" end),
          ($c0 / $tck * 100 | round / 100), ($c1 / $tck * 100 | round / 100),
          ($h.cross_shard_pairs // "-"), $fin,
          (if $fin > 0 then ($hf / $fin * 1000 | round / 1000) else 0 end),
          (if $hb > 0 then ($hf / $hb | round) else "-" end),
          (if $hb > 0 then ($wk / $hb * 100 | round / 100) else "-" end),
          $qf, $load ] | @tsv' "$OUT/run.json" | tee -a "$OUT/scaling.tsv"
}

printf '%s\n' "round	shards	placement	sessions	size	rate	frames/s	per_shard	Gbit/s	p99_ms	hub_cpu_s	cpu_s_per_Mframe	shard0_cpu_s	shard1_cpu_s	cross_pairs	frames_in	handoff_frac	frames_per_batch	wakeups_per_batch	queue_full	load1" |
    tee "$OUT/scaling.tsv"
for r in $(seq "$ROUNDS"); do
    configs=$CONFIGS
    if ((r % 2 == 0)); then
        configs=$(tr ' ' '\n' <<< "$CONFIGS" | tac | tr '\n' ' ')
    fi
    for c in $CASES; do
        for k in $configs; do
            IFS=: read -r n size rate <<< "$c"
            run "$r" "${k%%:*}" "${k##*:}" "$n" "$size" "${rate:-0}"
        done
    done
done

# Medians per configuration.
python3 - "$OUT/scaling.tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
groups = {}
for r in rows:
    key = (int(r["sessions"]), int(r["size"]), int(r["rate"]), int(r["shards"]), r["placement"])
    groups.setdefault(key, []).append(r)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs if r[k] not in ("-", ""))
print("\nmedians: sessions size rate shards placement | frames/s per_shard cpu_s/Mframe handoff_frac frames/batch p99_ms | runs")
for key in sorted(groups):
    rs = groups[key]
    fpb = [float(r["frames_per_batch"]) for r in rs if r["frames_per_batch"] != "-"]
    print("%4d %5d %6d %d %-5s | %10.0f %10.0f %7.3f %6.3f %6s %8.2f | %d" % (
        *key, med(rs, "frames/s"), med(rs, "per_shard"), med(rs, "cpu_s_per_Mframe"),
        med(rs, "handoff_frac"), "%.0f" % statistics.median(fpb) if fpb else "-",
        med(rs, "p99_ms"), len(rs)))
EOF
echo "results: $OUT/scaling.tsv"
