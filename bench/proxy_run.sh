#!/bin/sh
# bench/proxy_run.sh [BUILD]: what reading PROXY protocol headers costs
# (issue 14), from a build directory where bench/proxy_cost is built.
#
#   1. bench/proxy_cost: ns per cio_proxy_parse() of a v1 line, a v2 INET
#      header and a v2 INET6 header with three TLVs; then the server thread's
#      CPU time per connection (one loop on CPU 0, blocking clients on CPU 1,
#      connect + header + "ping\n" in one send + echo + close) with no
#      header and with each, in alternating rounds, and the ratio to none;
#      then the same per datagram (two UDP endpoints on the same loop, a
#      v2 UDP4 or UDP6 header and a 64-byte payload out, the payload back).
#   2. With valgrind: user-space instructions per cio_proxy_parse()
#      (--toggle-collect, 11,000 parses minus 1,000) and per connection or
#      datagram of the server thread (callgrind's thread 1 of
#      `proxy_cost --trace KIND N`, N = 1,100 minus N = 100, so that
#      start-up and shutdown cancel).
#   3. With strace: system calls per connection or datagram of the server
#      thread (`strace -c` without -f follows the main thread only, which
#      runs the loop), the same difference of two runs.
#
# Environment: PROXY_ROUNDS (default 9), PROXY_CONNS (connections per case
# and round, default 2000), PROXY_DGRAMS (datagrams per case and round,
# default 5000), PROXY_CONCURRENCY (client threads, default 1), BENCH_SCALE
# (scales the parse loops, PROXY_CONNS and PROXY_DGRAMS). About a minute.
# The exit status is 1 if a run failed; missing valgrind or strace is not a
# failure (those tables are skipped with a message).
set -eu
b=${1:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

prog=$b/bench/proxy_cost
[ -x "$prog" ] || { echo "proxy_run.sh: $prog is not built (make bench/proxy_cost)" >&2; exit 1; }
# The binary itself, not libtool's wrapper script, for valgrind and strace.
real=$b/bench/.libs/proxy_cost
[ -x "$real" ] || real=$prog
run_real() {
    LD_LIBRARY_PATH="$b/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"
}
kinds="none v1 v2 v2tlv"
dkinds="dgram-none dgram-v2 dgram-v2tlv"
n1=100
n2=1100

echo "## Issue 14: PROXY headers ($(date -u +%Y-%m-%d), $(nproc) CPUs, Linux $(uname -r))"
echo
"$prog" --scale "${BENCH_SCALE:-1}" --rounds "${PROXY_ROUNDS:-9}" --conns "${PROXY_CONNS:-2000}" \
    --dgrams "${PROXY_DGRAMS:-5000}" --concurrency "${PROXY_CONCURRENCY:-1}" || status=1

# Instructions in the file of callgrind's $1 (its summary line).
cg_total() {
    sed -n 's/^summary: *//p' "$1"
}

# callgrind of `proxy_cost --trace $1 $2`: the server thread's instructions.
cg_trace() {
    run_real valgrind --tool=callgrind --separate-threads=yes \
        --callgrind-out-file="$tmp/cg.$1.$2" "$real" --trace "$1" "$2" 2>"$tmp/vg.err" ||
        { sed 's/^/  /' "$tmp/vg.err" >&2; return 1; }
    cg_total "$tmp/cg.$1.$2-01"
}

# callgrind of `proxy_cost --parse-only $1 $2`, counting inside cio_proxy_parse only.
cg_parse() {
    run_real valgrind --tool=callgrind --toggle-collect=cio_proxy_parse \
        --callgrind-out-file="$tmp/cgp.$1.$2" "$real" --parse-only "$1" "$2" 2>"$tmp/vg.err" ||
        { sed 's/^/  /' "$tmp/vg.err" >&2; return 1; }
    cg_total "$tmp/cgp.$1.$2"
}

# The instruction table of the kinds $2... per $1 (connection or datagram), against the first.
cg_table() {
    what=$1
    shift
    echo
    echo "| header | instructions per cio_proxy_parse() |" \
        "instructions per $what (server thread) | vs none |"
    echo "|---|---:|---:|---:|"
    base=
    for k in "$@"; do
        p=-
        if [ "$k" != none ] && [ "$k" != dgram-none ]; then
            if a=$(cg_parse "$k" 1000) && c=$(cg_parse "$k" 11000); then
                p=$(((c - a) / 10000))
            else
                status=1
            fi
        fi
        if ! { a=$(cg_trace "$k" $n1) && c=$(cg_trace "$k" $n2); }; then
            status=1
            continue
        fi
        per=$(((c - a) / (n2 - n1)))
        [ -n "$base" ] || base=$per
        echo "| $k | $p | $per | $(awk -v a="$per" -v b="$base" 'BEGIN { printf "%.2f", a / b }') |"
    done
}

if command -v valgrind >/dev/null 2>&1; then
    cg_table connection $kinds
    cg_table datagram $dkinds
else
    echo "skipped instructions: valgrind not found (Debian: valgrind)" >&2
fi

# strace -c of `proxy_cost --trace $1 $2` into $tmp/st.$1.$2: "syscall calls" lines.
st_trace() {
    run_real strace -c -o "$tmp/st.raw" "$real" --trace "$1" "$2" >/dev/null 2>"$tmp/st.err" ||
        { sed 's/^/  /' "$tmp/st.err" >&2; return 1; }
    awk '$1 ~ /^[0-9.]+$/ && $NF != "total" { print $NF, $4 }' "$tmp/st.raw" >"$tmp/st.$1.$2"
}

# "KIND SYSCALL PER-CASE" lines of the kinds $@: the long run's calls minus the short one's.
st_per_case() {
    for k in "$@"; do
        [ -s "$tmp/st.$k.$n2" ] || continue
        awk -v k="$k" -v d=$((n2 - n1)) 'NR == FNR { short[$1] = $2; next }
            { printf "%s %s %.2f\n", k, $1, ($2 - short[$1]) / d }' \
            "$tmp/st.$k.$n1" "$tmp/st.$k.$n2"
    done
}

# The table: a column for each system call made at least 0.5 times per $1 by a kind.
st_table() {
    awk -v what="$1" '
    { v[$1, $2] = $3; tot[$1] += $3; if (!($1 in ks)) ko[nk++] = $1; ks[$1] = 1
      if ($3 >= 0.5 && !($2 in col)) { col[$2] = 1; cols[nc++] = $2 } }
    END {
        for (i = 1; i < nc; i++) # by name
            for (j = i; j > 0 && cols[j - 1] > cols[j]; j--) {
                t = cols[j]; cols[j] = cols[j - 1]; cols[j - 1] = t
            }
        printf "| header | system calls per %s (server thread) |", what
        for (j = 0; j < nc; j++) printf " %s |", cols[j]
        printf "\n|---|---:|"
        for (j = 0; j < nc; j++) printf "---:|"
        printf "\n"
        for (i = 0; i < nk; i++) {
            printf "| %s | %.2f |", ko[i], tot[ko[i]]
            for (j = 0; j < nc; j++) printf " %.2f |", v[ko[i], cols[j]]
            printf "\n"
        }
    }'
}

if command -v strace >/dev/null 2>&1 && strace -o /dev/null true 2>/dev/null; then
    for k in $kinds $dkinds; do
        if ! { st_trace "$k" $n1 && st_trace "$k" $n2; }; then
            status=1
        fi
    done
    echo
    st_per_case $kinds | st_table connection
    echo
    st_per_case $dkinds | st_table datagram
else
    echo "skipped system calls: strace not found or not allowed to trace (Debian: strace)" >&2
fi
exit $status
