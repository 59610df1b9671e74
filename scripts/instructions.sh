#!/usr/bin/env bash
# Instructions per operation on the hot path, counted by callgrind: stable
# on a shared, noisy machine where wall-clock benchmarks are not, so a
# regression shows in review. Each operation runs N and 2N times; the
# difference over N cancels the setup. Needs valgrind.
#
#   scripts/instructions.sh            # every operation, a table
#   scripts/instructions.sh gso64k     # one
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
cargo build --release -q -p hub --example hotpath
bin=target/release/examples/hotpath
ops=("$@")
((${#ops[@]})) || ops=(encode64 encode1514 decode64 fabric1k fabric100k session64 handoff64 gso64k)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
count() { # OP N -> total instructions (Ir) of the run
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" "$1" "$2" >/dev/null 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }
  awk '/^summary:/ {print $2}' "$tmp/out"
}
printf '%-12s %14s\n' operation 'instr/op'
for op in "${ops[@]}"; do
  case $op in
    gso64k) n=200 ;;
    fabric100k) n=200000 ;;
    *) n=100000 ;;
  esac
  a=$(count "$op" "$n")
  b=$(count "$op" $((2 * n)))
  awk -v a="$a" -v b="$b" -v n="$n" -v op="$op" 'BEGIN { printf "%-12s %14.1f\n", op, (b - a) / n }'
done
