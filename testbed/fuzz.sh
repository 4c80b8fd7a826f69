#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after another and prints, per
# target, the inputs run, the wall time and libFuzzer's final statistics.
#
#   testbed/fuzz.sh [TARGET|all] [RUNS]   fuzz RUNS inputs each (default: all, 1000000)
#   testbed/fuzz.sh cmin [TARGET|all]     merge new finds into fuzz/corpus, minimised
#
# Needs the nightly toolchain; installs cargo-fuzz from crates.io if it is
# missing. New inputs go to fuzz/target/corpus/TARGET, which git ignores;
# the committed corpus in fuzz/corpus/TARGET is only read. A crash stops
# the script and leaves the input in fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
source testbed/lib.sh

TARGETS=(task_request instagram_media ghost_response config)
# No sanitizer: tend forbids unsafe code, so the bugs to find are panics,
# and cargo fuzz keeps debug assertions on, so integer overflow panics too.
# 16 codegen units shorten the first build of the AWS SDK crates.
BUILD_FLAGS=(--sanitizer none --codegen-units 16)

# Maximum input length libFuzzer generates: room for the largest seed (the
# full example config is about 5 KiB) without slowing the other targets.
max_len() {
    case $1 in
    config) echo 8192 ;;
    *) echo 4096 ;;
    esac
}

ensure_cargo_fuzz() {
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        echo "fuzz.sh: the nightly toolchain is missing; install it with 'rustup toolchain install nightly'" >&2
        exit 1
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
}

# Prints the targets named by $1: one target, or all of them.
select_targets() {
    local choice=${1:-all} target
    if [[ $choice == all ]]; then
        echo "${TARGETS[@]}"
        return
    fi
    for target in "${TARGETS[@]}"; do
        if [[ $target == "$choice" ]]; then
            echo "$choice"
            return
        fi
    done
    echo "fuzz.sh: unknown target $choice; use one of: all ${TARGETS[*]}" >&2
    exit 2
}

# Fuzzes $1 for $2 inputs and prints one Markdown table row.
run_target() {
    local target=$1 runs=$2
    local work=fuzz/target/corpus/$target
    local output=fuzz/target/logs/$target.log
    mkdir -p "$work" fuzz/target/logs
    log "fuzzing $target for $runs inputs (libFuzzer output: $output)"
    local start end
    start=$(date +%s.%N)
    if ! cargo +nightly fuzz run "${BUILD_FLAGS[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
        -runs="$runs" -max_len="$(max_len "$target")" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$output" 2>&1; then
        tail -n 40 "$output" >&2
        echo "fuzz.sh: $target failed; the input is in fuzz/artifacts/$target" >&2
        exit 1
    fi
    end=$(date +%s.%N)
    local executed seconds rate done_line
    executed=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$output")
    seconds=$(awk -v start="$start" -v end="$end" 'BEGIN {printf "%.1f", end - start}')
    # Over the wall time, which includes starting cargo and loading the corpus.
    rate=$(awk -v n="$executed" -v s="$seconds" 'BEGIN {printf "%.0f", n / s}')
    # The final status line, such as "#1000000 DONE cov: 2011 ft: 6093 corp: 412/61Kb ...".
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$output" | tail -n 1)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$target" "$executed" "$seconds" "$rate" \
        "$(awk '{for (i = 1; i < NF; i++) if ($i == "cov:") print $(i + 1)}' <<<"$done_line")" \
        "$(awk '{for (i = 1; i < NF; i++) if ($i == "ft:") print $(i + 1)}' <<<"$done_line")" \
        "$(awk '{for (i = 1; i < NF; i++) if ($i == "corp:") print $(i + 1)}' <<<"$done_line")" \
        "$(awk '/^stat::peak_rss_mb:/ {print $2}' "$output")"
}

# Merges the committed corpus of $1 with the inputs found by runs, keeps a
# minimal set with the same coverage, and writes it to fuzz/corpus/$1.
# Hand-written seeds (seed-*) stay under their names even when the
# minimised set does not need them, because they document the input format.
minimize_target() {
    local target=$1
    local corpus=fuzz/corpus/$target
    local merged=fuzz/target/cmin/$target
    rm -rf "$merged"
    mkdir -p "$merged" "fuzz/target/corpus/$target"
    cp "$corpus"/* "$merged"/
    find "fuzz/target/corpus/$target" -type f -exec cp -t "$merged" {} +
    log "minimising $target from $(find "$merged" -type f | wc -l) inputs"
    # Edges without hit counts, and a greedy set cover over them, keep the
    # committed corpus to a few hundred files; counting hits keeps thousands.
    cargo +nightly fuzz cmin "${BUILD_FLAGS[@]}" "$target" "$merged" -- \
        -use_counters=0 -set_cover_merge=1 >"fuzz/target/logs/$target.cmin.log" 2>&1
    find "$corpus" -type f ! -name 'seed-*' -delete
    cp "$merged"/* "$corpus"/
    # cmin names files by their SHA-1; drop the copies of the seeds.
    local seed
    for seed in "$corpus"/seed-*; do
        rm -f "$corpus/$(sha1sum "$seed" | cut -c1-40)"
    done
    echo "$target: $(find "$corpus" -type f | wc -l) files, $(du -sk "$corpus" | cut -f1) KiB"
}

ensure_cargo_fuzz
if [[ ${1:-} == cmin ]]; then
    for target in $(select_targets "${2:-all}"); do
        minimize_target "$target"
    done
    exit 0
fi

runs=${2:-1000000}
targets=$(select_targets "${1:-all}")
log "building the fuzz targets"
cargo +nightly fuzz build "${BUILD_FLAGS[@]}"
echo "machine: $(nproc) cores, $(uname -sr), $(rustc +nightly --version); $(date -u +%Y-%m-%d)"
echo
echo "| target | inputs run | wall s | exec/s | cov | ft | corpus | peak RSS MB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for target in $targets; do
    run_target "$target" "$runs"
done
