#!/usr/bin/env bash
# A short libFuzzer run of every fuzz target (CI, after the tests), failing
# on the first crash, hang or leak. The committed corpus in fuzz/corpus/ is
# read but never written: new inputs go to a scratch directory, so a run
# leaves the work tree clean. Crash inputs land in fuzz/artifacts/<target>/.
#
#   scripts/fuzz-short.sh              # CI times: ~6 min in all
#   FUZZ_SCALE=5 scripts/fuzz-short.sh # five times longer per target
#   scripts/fuzz-short.sh wire_decode  # one target
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || {
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 2
}

# Seconds per target: the parsers that meet the network and the config
# parser get the longest runs.
declare -A SECONDS_FOR=(
  [wire_decode]=60
  [http_request]=60
  [config]=60
  [http_response]=20
  [session_input]=20
  [relay_url]=20
  [relay_reply]=20
  [offload_cut]=20
  [softether_pack]=30
  [softether_data]=20
  [softether_handshake]=30
)
scale=${FUZZ_SCALE:-1}
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi

for t in "${targets[@]}"; do
  cargo fuzz build "$t" || { echo "building fuzz target $t failed" >&2; exit 1; }
done

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
summary=()
for t in "${targets[@]}"; do
  secs=$(( ${SECONDS_FOR[$t]:-20} * scale ))
  mkdir -p "$scratch/$t" "corpus/$t"
  log="$scratch/$t.log"
  echo "== fuzz $t for ${secs}s"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb bounds
  # memory (a parser that allocates what the input asks for is a bug).
  if ! cargo fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "FUZZ FAILURE in $t: the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  summary+=("$t: ${secs}s, $execs executions, 0 crashes")
done
printf '%s\n' "== fuzz summary" "${summary[@]}"
