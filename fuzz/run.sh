#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other, and
# prints a table: target, seconds, executions, corpus size, crashes.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default 30 s, all targets)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz
# when it is missing. The committed seeds (fuzz/corpus/<target>) are read, never written:
# what the fuzzer finds goes to fuzz/target/corpus/<target> and is kept for the next run.
# A crash stops that target and is saved under fuzz/artifacts/<target>/; reproduce it with
# `cargo +nightly fuzz run <target> <file>`, fix the parser, then copy the file to
# fuzz/regressions/<target>/ so the stable `cargo test --test fuzz_corpus` replays it.
# Exits 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-30}
[[ $secs =~ ^[0-9]+$ ]] || {
	echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
	exit 2
}
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
	echo "fuzz/run.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
	exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz/run.sh: installing cargo-fuzz" >&2
	cargo install cargo-fuzz --locked
fi

if (($# > 0)); then
	targets=("$@")
else
	mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build for all targets (release, debug assertions, AddressSanitizer).
cargo +nightly fuzz build

logs=target/fuzz-logs
mkdir -p "$logs"
rows=()
failed=0
for t in "${targets[@]}"; do
	mkdir -p "target/corpus/$t" "artifacts/$t"
	before=$(find "artifacts/$t" -type f | sort)
	log="$logs/$t.log"
	start=$(date +%s)
	# -timeout: an input that takes 10 s is a bug too (a hang on hostile input).
	cargo +nightly fuzz run "$t" "target/corpus/$t" "corpus/$t" -- \
		-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || true
	# libFuzzer's own run time (the wall time also counts a rebuild after source changes).
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	[[ -n $took ]] || took=$(($(date +%s) - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	[[ -n $execs ]] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
	corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	new=$(comm -13 <(echo "$before") <(find "artifacts/$t" -type f | sort) | sed '/^$/d')
	crashes=$(printf '%s' "$new" | grep -c . || true)
	((crashes == 0)) || failed=1
	rows+=("$t|$took|${execs:-?}|${corpus:-?}|$crashes|$(echo "$new" | tr '\n' ' ')")
done

printf '%-18s %8s %12s %8s %8s  %s\n' target seconds executions corpus crashes artifacts
for r in "${rows[@]}"; do
	IFS='|' read -r t took execs corpus crashes files <<<"$r"
	printf '%-18s %8s %12s %8s %8s  %s\n' "$t" "$took" "$execs" "$corpus" "$crashes" "$files"
done
echo "logs: fuzz/$logs/<target>.log"
exit "$failed"
