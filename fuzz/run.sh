#!/bin/sh
# fuzz/run.sh SECONDS CORPUS_DIR OUT_DIR TARGET...: run each libFuzzer target
# (fuzz/libfuzzer_TARGET, built by `make fuzz`) for SECONDS, one after the
# other, from the seed corpus CORPUS_DIR/TARGET. New inputs go to
# OUT_DIR/TARGET/new, crashes, leaks and timeouts to OUT_DIR/TARGET/crash-*
# (and leak-*, timeout-*); the seed corpus is only read. Exits 1 if any
# target found something, after running them all.
set -eu
secs=$1 corpus=$2 out=$3
shift 3
dir=$(dirname "$0")
found=0
for t in "$@"; do
    mkdir -p "$out/$t/new"
    dict=
    [ -f "$dir/$t.dict" ] && dict="-dict=$dir/$t.dict"
    case $t in http) maxlen=20000 ;; *) maxlen=8192 ;; esac
    echo "fuzz: $t for $secs s (new inputs: $out/$t/new)"
    rc=0
    # shellcheck disable=SC2086
    "fuzz/libfuzzer_$t" -max_total_time="$secs" -timeout=60 -report_slow_units=60 -max_len=$maxlen $dict \
        -print_final_stats=1 -artifact_prefix="$out/$t/" "$out/$t/new" "$corpus/$t" \
        >"$out/$t/log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t/log")
    echo "fuzz: $t: ${execs:-?} runs, $(ls "$out/$t/new" | wc -l) new inputs, exit $rc"
    crashes=$(ls "$out/$t" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
    if [ $rc -ne 0 ] || [ -n "$crashes" ]; then
        echo "fuzz: $t FOUND A PROBLEM: see $out/$t/log"
        for c in $crashes; do echo "    $out/$t/$c"; done
        grep -E '^(==[0-9]+==ERROR|SUMMARY)' "$out/$t/log" | head -5 || true
        found=1
    fi
done
exit $found
