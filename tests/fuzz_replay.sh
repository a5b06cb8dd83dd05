#!/bin/sh
# tests/fuzz_replay.sh: every file of each fuzz corpus (fuzz/corpus/TARGET/)
# through its target, built with the ordinary compiler as fuzz/replay_TARGET
# (under the sanitizers too when the build has them). A crash, a sanitizer
# report or a broken contract fails the test and names the corpus.
set -eu
b=${top_builddir:-.}
s=${top_srcdir:-.}
fail=0
for t in ini http framing proxy; do
    if out=$("$b/fuzz/replay_$t" "$s/fuzz/corpus/$t" 2>&1); then
        echo "PASS: $t: $out"
    else
        echo "FAIL: $t corpus:"; printf '%s\n' "$out"; fail=1
    fi
done
exit $fail
