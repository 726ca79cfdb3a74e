#!/usr/bin/env bash
# Compares two builds of the train_step bench on a noisy machine: both run
# at once, single-threaded, one pinned to each of the first two cores, and
# the cores are swapped every round. Other tenants' load then falls on both
# alike, which alternating runs cannot promise (BENCHMARKS.md, session 23).
#
#   benches/pair_steps.sh ROUNDS BIN_A BIN_B [train_step args...]
#   e.g. benches/pair_steps.sh 8 /tmp/ts_before /tmp/ts_after small --precision f32 --steps 3
#
# Prints tokens/s of each per round, then each one's sorted figures and
# how many rounds B won. Needs `taskset` (util-linux) and two cores.
set -euo pipefail
ROUNDS=$1
A=$2
B=$3
shift 3
ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(small --precision f32 --steps 3)
# One thread's peaks, so neither run spends its first seconds measuring them.
export PEAK_F32=${PEAK_F32:-174} PEAK_BF16=${PEAK_BF16:-86}
tokens() { taskset -c "$2" "$1" "${ARGS[@]}" --threads 1 2>&1 | awk '/tokens\/s/ {print $4; exit}'; }
ra=()
rb=()
wins=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 1 "$ROUNDS"); do
  if (( i % 2 )); then ca=0 cb=1; else ca=1 cb=0; fi
  tokens "$A" "$ca" > "$tmp/a" &
  tokens "$B" "$cb" > "$tmp/b"
  wait
  a=$(cat "$tmp/a")
  b=$(cat "$tmp/b")
  echo "round $i: A $a (cpu $ca)  B $b (cpu $cb)"
  ra+=("$a")
  rb+=("$b")
  if [ "${b:-0}" -gt "${a:-0}" ]; then wins=$((wins + 1)); fi
done
echo "A: $(printf '%s\n' "${ra[@]}" | sort -n | tr '\n' ' ')"
echo "B: $(printf '%s\n' "${rb[@]}" | sort -n | tr '\n' ' ')"
echo "B faster in $wins of $ROUNDS rounds"
