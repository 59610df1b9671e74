#!/usr/bin/env bash
# Soak test of the hub (issue 6, item 6): many sessions for a long time,
# the hub's RSS, open fds and session count sampled into a CSV, and at the
# end — after the load stops and every session is gone — a check that
# nothing grew beyond a stated bound over the baseline taken after a
# warm-up with the same load.
#
#   scripts/soak.sh [--duration SECS] [--sessions N] [--round SECS]
#                   [--warmup SECS] [--sample SECS] [--out DIR]
#                   [--rss-bound-mib MIB] [--retain-pct P] [--fd-bound N]
#                   [--heap-bound-kib KIB | --heap-bound-mib MIB] [--shards N]
#
# Defaults: 600 s of load, 1000 sessions, rounds of 60 s, warm-up 30 s,
# a sample every 2 s. The load runs in two halves with an idle point
# between; the bounds (fds exactly back; the heap in use at the end within
# 8 MiB of the middle; RSS at the end within 16 MiB + 10% of the load's
# peak of both the middle and the baseline) are explained at the end of
# this script. A short run with few sessions needs a heap bound sized to
# them (bench/tests/soak_smoke.rs passes --heap-bound-kib).
#
# The load is a mix, run as three `vhub-bench` processes at once (each on
# its own virtual hub), again
# and again in rounds (every round connects and closes every session, so
# session set-up and tear-down are soaked too, not only the data path):
#   50% idle sessions (keep-alives only),
#   40% in pairs at 50 frames/s per sender, sizes 64..1514 ("mixed"),
#   10% broadcast: one sender at 20 frames/s of 64 bytes, flooded to the rest.
#
# Binaries: $VHUB and $VHUB_BENCH, else target/debug (or
# $CARGO_TARGET_DIR/debug); build them with `cargo build -p hub -p bench`.
# Output in DIR (default: a new temporary directory): samples.csv,
# rounds.csv, summary.txt, hub.log. Exit 0 when within the bounds, 1 when
# not, 2 on a setup error.
set -euo pipefail

DURATION=600
SESSIONS=1000
ROUND=60
WARMUP=30
SAMPLE=2
OUT=""
RSS_BOUND_MIB=16
HEAP_BOUND_KIB=$(( 8 * 1024 ))
FD_BOUND=0
RETAIN_PCT=10
SHARDS=2

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --round) ROUND=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --sample) SAMPLE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --rss-bound-mib) RSS_BOUND_MIB=$2; shift 2 ;;
        --fd-bound) FD_BOUND=$2; shift 2 ;;
        --heap-bound-mib) HEAP_BOUND_KIB=$(( $2 * 1024 )); shift 2 ;;
        --heap-bound-kib) HEAP_BOUND_KIB=$2; shift 2 ;;
        --retain-pct) RETAIN_PCT=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VHUB=${VHUB:-$TARGET/debug/vhub}
VHUB_BENCH=${VHUB_BENCH:-$TARGET/debug/vhub-bench}
for b in "$VHUB" "$VHUB_BENCH"; do
    [ -x "$b" ] || { echo "soak.sh: $b is missing: cargo build -p hub -p bench" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "soak.sh: curl is missing (Debian package curl)" >&2; exit 2; }
[ -n "$OUT" ] || OUT=$(mktemp -d /tmp/vhub-soak.XXXXXX)
mkdir -p "$OUT"

# A port nobody listens on at the moment (bash's /dev/tcp connects).
. "$ROOT/scripts/free-port.sh"
PORT=$(free_port)
MPORT=$(free_port)
cat > "$OUT/hub.toml" <<EOF
listen = "127.0.0.1:$PORT"
metrics_listen = "127.0.0.1:$MPORT"
admin_socket = "off"
cert_dir = "$OUT/certs"
shards = $SHARDS

[session]
keepalive = "2s"
timeout = "6s"
detach_grace = "5s"

# Every session comes from 127.0.0.1, three benches connecting at once.
[limits]
max_handshakes_per_address = 256

# One virtual hub per pattern: separate broadcast domains, so each
# bench's frame accounting is exact (no floods from the others).
[[hub]]
name = "IDLE"
anonymous = true

[[hub]]
name = "PAIRS"
anonymous = true

[[hub]]
name = "BCAST"
anonymous = true
EOF

ulimit -n 65536 2>/dev/null || true
VHUB_LOG=warn NO_COLOR=1 "$VHUB" --config "$OUT/hub.toml" > "$OUT/hub.log" 2>&1 &
HUB_PID=$!
SAMPLER_PID=""
BENCH_PIDS=()
cleanup() {
    for p in "${BENCH_PIDS[@]}" $SAMPLER_PID $HUB_PID; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap "exit 1" INT TERM

metrics() { curl -sf --max-time 5 "http://127.0.0.1:$MPORT/metrics"; }
# Sessions on all virtual hubs (attached or detached); "?" when the
# metrics cannot be read or have no vhub_sessions series (never 0: the
# drain would take a failed read for an empty hub).
sessions() { { metrics || true; } | awk '/^vhub_sessions\{/ { s += $2; n++ } END { if (n) print s; else print "?" }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$HUB_PID/status"; }
# Bytes allocated and not freed (the allocators' caches not included).
heap_kib() { { metrics || true; } | awk '/^vhub_heap_in_use_bytes / { printf "%d\n", $2 / 1024; n++ } END { if (!n) print "?" }'; }
fds() { ls "/proc/$HUB_PID/fd" | wc -l; }

for _ in $(seq 100); do
    metrics >/dev/null 2>&1 && break
    sleep 0.2
done
metrics >/dev/null || { echo "soak.sh: the hub did not start:" >&2; cat "$OUT/hub.log" >&2; exit 2; }

# The sampler: one line every $SAMPLE s; the phase is read from a file.
echo start > "$OUT/phase"
echo "t_s,phase,rss_kib,fds,sessions" > "$OUT/samples.csv"
T0=$(date +%s.%N)
(
    while kill -0 "$HUB_PID" 2>/dev/null; do
        t=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }')
        printf '%s,%s,%s,%s,%s\n' "$t" "$(cat "$OUT/phase")" "$(rss_kib)" "$(fds)" "$(sessions)" \
            >> "$OUT/samples.csv"
        sleep "$SAMPLE"
    done
) &
SAMPLER_PID=$!

IDLE=$(( SESSIONS * 50 / 100 ))
PAIRS=$(( SESSIONS * 40 / 100 / 2 * 2 ))
BCAST=$(( SESSIONS - IDLE - PAIRS ))
[ "$BCAST" -ge 2 ] || BCAST=2
echo "round,seconds,sessions,frames_sent,frames_received,lost,hub_drops" > "$OUT/rounds.csv"

# Frames the hub dropped and counted (full queues), per round, next to the
# bench's "lost" in rounds.csv. For information, not a pass/fail check:
# the hub counts a drop per copy (a flood to 400 full queues is 400
# drops) and the bench a frame once, and at the end of a round a session
# that closed first turns its partner's last frames into floods. Exact
# accounting is asserted by bench/tests/smoke.rs on short unicast runs.
hub_drops() {
    metrics | awk '/^vhub_frames_dropped_total\{reason="(queue_full|handoff_full)"\}/ { s += $2 } END { print s + 0 }'
}

# One round of the mix, $1 seconds, numbered $2. Fails if a bench fails.
ROUND_N=0
round() {
    local secs=$1 n=$2 d0 d1
    d0=$(hub_drops)
    BENCH_PIDS=()
    local common=(--hub "127.0.0.1:$PORT" --baseline false --json --duration "$secs" --hub-pid "$HUB_PID")
    "$VHUB_BENCH" "${common[@]}" --hub-name IDLE -n "$IDLE" --pattern idle > "$OUT/r$n-idle.json" 2> "$OUT/r$n-idle.err" &
    BENCH_PIDS+=($!)
    "$VHUB_BENCH" "${common[@]}" --hub-name PAIRS -n "$PAIRS" --pattern pairs --rate 50 --size mixed > "$OUT/r$n-pairs.json" 2> "$OUT/r$n-pairs.err" &
    BENCH_PIDS+=($!)
    "$VHUB_BENCH" "${common[@]}" --hub-name BCAST -n "$BCAST" --pattern broadcast --rate 20 --size 64 > "$OUT/r$n-broadcast.json" 2> "$OUT/r$n-broadcast.err" &
    BENCH_PIDS+=($!)
    local rc=0
    for p in "${BENCH_PIDS[@]}"; do wait "$p" || rc=1; done
    BENCH_PIDS=()
    d1=$(hub_drops)
    # With --baseline false the only figures in the JSON are the hub's.
    local row="$n,$secs" k
    for k in sessions frames_sent frames_received lost; do
        row="$row,$(cat "$OUT/r$n-idle.json" "$OUT/r$n-pairs.json" "$OUT/r$n-broadcast.json" |
            awk -v k="\"$k\":" '$1 == k { gsub(/,/, "", $2); s += $2; c++ } END { if (c == 3) print s; else print "?" }')"
    done
    echo "$row,$(( d1 - d0 ))" >> "$OUT/rounds.csv"
    case "$row" in *'?'*) rc=1 ;; esac
    if [ $rc -ne 0 ]; then
        echo "soak.sh: round $n failed:" >&2
        tail -n 5 "$OUT"/r"$n"-*.err >&2
        exit 1
    fi
}

# Waits (up to 60 s) until the hub has no session left.
drain() {
    for _ in $(seq 120); do
        [ "$(sessions)" = 0 ] && return 0
        sleep 0.5
    done
    echo "soak.sh: sessions did not go back to 0: $(sessions)" >&2
    exit 1
}

# Fails (exit 2) unless every argument is a number: a reading that failed
# ("?" or empty) must not pass for a value.
numbers() {
    local what=$1 v
    shift
    for v in "$@"; do
        [[ "$v" =~ ^[0-9]+$ ]] || { echo "soak.sh: could not read the hub's $what ($*)" >&2; exit 2; }
    done
}

# "rss_kib fds" once RSS has settled: the allocator hands freed memory
# back over seconds, so read every 2 s until three readings in a row lie
# within 1 MiB (at most 60 s), and give the last.
settle() {
    local a b c=0 i
    a=$(rss_kib); sleep 2; b=$(rss_kib)
    for i in $(seq 30); do
        sleep 2
        c=$(rss_kib)
        local lo=$a hi=$a
        for v in $b $c; do
            [ "$v" -ge "$lo" ] || lo=$v
            [ "$v" -le "$hi" ] || hi=$v
        done
        [ $(( hi - lo )) -gt 1024 ] || break
        a=$b; b=$c
    done
    echo "$c $(fds) $(heap_kib)"
}

echo "soak: $SESSIONS sessions ($IDLE idle, $PAIRS in pairs, $BCAST broadcast), warm-up ${WARMUP}s, load ${DURATION}s in rounds of ${ROUND}s; output in $OUT"
echo warmup > "$OUT/phase"
round "$WARMUP" 0
drain
echo baseline > "$OUT/phase"
read -r RSS0 FD0 HEAP0 <<< "$(settle)"
numbers "RSS, fds and heap at the baseline" "$RSS0" "$FD0" "$HEAP0"
echo "baseline after warm-up: RSS $RSS0 KiB, fds $FD0, heap in use $HEAP0 KiB"

# Rounds of the mix for $1 seconds.
n=1
load() {
    local start left secs
    start=$(date +%s)
    echo load > "$OUT/phase"
    while :; do
        left=$(( start + $1 - $(date +%s) ))
        [ "$left" -ge 5 ] || break
        secs=$ROUND
        [ "$left" -ge "$secs" ] || secs=$left
        round "$secs" "$n"
        n=$(( n + 1 ))
    done
    echo drain > "$OUT/phase"
    drain
}

# Two halves with an idle point between them: the same work before the
# middle and before the end, so a leak shows as growth from the middle
# to the end, whatever the allocator kept after the peak of the load.
load $(( DURATION / 2 ))
echo middle > "$OUT/phase"
read -r RSSM FDM HEAPM <<< "$(settle)"
numbers "RSS, fds and heap at the middle" "$RSSM" "$FDM" "$HEAPM"
echo "middle (idle, after half the load): RSS $RSSM KiB, fds $FDM, heap in use $HEAPM KiB"
load $(( DURATION - DURATION / 2 ))
echo after > "$OUT/phase"
read -r RSS1 FD1 HEAP1 <<< "$(settle)"
numbers "RSS, fds and heap at the end" "$RSS1" "$FD1" "$HEAP1"
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

# During the load: peak and mean RSS and fds, peak sessions.
read -r RSS_MAX RSS_MEAN FD_MAX SESS_MAX <<< "$(awk -F, '$2 == "load" {
    n++; r += $3; if ($3 > rm) rm = $3; if ($4 > fm) fm = $4; if ($5 > sm) sm = $5
} END { printf "%d %d %d %d\n", rm, (n ? r / n : 0), fm, sm }' "$OUT/samples.csv")"
read -r FRAMES LOST DROPS <<< "$(awk -F, 'NR > 2 { r += $5; l += $6; d += $7 } END { printf "%d %d %d\n", r, l, d }' "$OUT/rounds.csv")"
TIMEOUTS=$(metrics | awk '/^vhub_keepalive_timeouts_total / { print $2 }')

# The bounds: fds back to the baseline (+ --fd-bound) at the middle and at
# the end. The heap in use (exact: what is allocated and not freed) at the
# end within --heap-bound-kib of the middle: the leak check. It is not
# zero because capacity ratchets: tables and queues that grow to a new
# high-water mark keep it, and the peaks of a random load keep rising a
# little (measured: +0.04 MiB in the CI form, +2.9 MiB over 7 rounds of
# 400 sessions; OpenSSL/glibc's part grows by tens of bytes per session
# and slows down as it goes). A leak of what a session holds (40 KiB when
# idle) would be sessions x rounds x 40 KiB: 100+ MiB for the default run;
# the bound catches anything above ~3 KiB per session. The bound is not
# scaled by itself: a run with fewer sessions or rounds must pass a
# smaller one (8 MiB over the 200 sessions of the CI form would let
# 41 KiB per session leak, more than an idle session holds). RSS at the end within --rss-bound-mib plus --retain-pct of the
# load's peak above the baseline, of the middle (no growth over the second
# half: the leak check) and of the baseline. The second term is what the
# allocator (mimalloc) may keep after a high-water mark: measured here,
# 400 busy sessions peak at ~1 GiB (each may buffer max_buffered_bytes,
# 1 MiB, plus its I/O buffers) and leave 6-10% of it resident with no
# session left, varying from run to run; a handful of readings cannot
# tell that from a leak smaller than it.
RETAIN_KIB=$(( (RSS_MAX - RSS0) * RETAIN_PCT / 100 ))
RSS_LIMIT_MID=$(( RSSM + RSS_BOUND_MIB * 1024 + RETAIN_KIB ))
RSS_LIMIT=$(( RSS0 + RSS_BOUND_MIB * 1024 + RETAIN_KIB ))
FD_LIMIT=$(( FD0 + FD_BOUND ))
OK=1
[ "$RSS1" -le "$RSS_LIMIT_MID" ] || OK=0
[ "$RSS1" -le "$RSS_LIMIT" ] || OK=0
[ "$FD1" -le "$FD_LIMIT" ] || OK=0
[ "$FDM" -le "$FD_LIMIT" ] || OK=0
HEAP_LIMIT=$(( HEAPM + HEAP_BOUND_KIB ))
[ "$HEAP1" -le "$HEAP_LIMIT" ] || OK=0
{
    echo "soak: $SESSIONS sessions, $(( n - 1 )) rounds, load ${DURATION}s, $FRAMES frames received by the bench during the load"
    awk -v a="$RSS0" -v m="$RSS_MEAN" -v p="$RSS_MAX" -v z="$RSS1" -v mid="$RSSM" -v b="$RSS_BOUND_MIB" \
        -v l="$RSS_LIMIT" -v lm="$RSS_LIMIT_MID" -v r="$RETAIN_PCT" 'BEGIN {
        printf "RSS  before %.1f MiB, during mean %.1f / peak %.1f MiB, middle %.1f MiB, after %.1f MiB\n",
            a / 1024, m / 1024, p / 1024, mid / 1024, z / 1024
        printf "     bounds (%d MiB + %d%% of the peak above before): after <= middle + that = %.1f MiB (no growth), after <= before + that = %.1f MiB\n",
            b, r, lm / 1024, l / 1024 }'
    echo "heap in use  before $HEAP0 KiB, middle $HEAPM KiB, after $HEAP1 KiB (bound: middle + $HEAP_BOUND_KIB KiB = $HEAP_LIMIT KiB)"
    echo "fds  before $FD0, during peak $FD_MAX, middle $FDM, after $FD1 (bound: before + $FD_BOUND)"
    echo "sessions during peak $SESS_MAX, after 0"
    echo "frames during the load: received $FRAMES, lost $LOST (bench), hub drops (full queues, per copy) $DROPS; keep-alive timeouts at the hub $TIMEOUTS (non-zero: clients starved of CPU)"
    if [ $OK = 1 ]; then echo "SOAK OK"; else echo "SOAK FAILED"; fi
} | tee "$OUT/summary.txt"
[ $OK = 1 ]
