#!/bin/sh
# tests/examples.sh: run the asyncio documentation's examples and check what
# they print: the greetings exactly, and the dates' count and spacing.
set -eu
b=${top_builddir:-.}
fail=0

check_greeting() { # $1: program, $2: expected output
    out=$("$b/examples/$1")
    if [ "$out" = "$2" ]; then
        echo "PASS: $1 printed '$2'"
    else
        echo "FAIL: $1 printed '$out', expected '$2'"; fail=1
    fi
}

# Five seconds, one line a second: five dates, one second apart (within 0.2 s).
check_dates() { # $1: program
    start=$(date +%s)
    out=$("$b/examples/$1")
    end=$(date +%s)
    lines=$(printf '%s\n' "$out" | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}$' || true)
    total=$(printf '%s\n' "$out" | wc -l)
    gaps=$(printf '%s\n' "$out" | awk '{ split($2, t, ":"); s = t[1]*3600 + t[2]*60 + t[3];
        if (NR > 1) { d = s - prev; if (d < 0) d += 86400; if (d < 0.99 || d > 1.2) bad++ } prev = s }
        END { print bad + 0 }')
    if [ "$lines" -eq 5 ] && [ "$total" -eq 5 ] && [ "$gaps" -eq 0 ] && [ $((end - start)) -ge 3 ]; then
        echo "PASS: $1 printed 5 dates one second apart over $((end - start)) s"
    else
        echo "FAIL: $1 printed $lines dates in $total lines ($gaps bad gaps) over $((end - start)) s:"
        printf '%s\n' "$out"
        return 1
    fi
}

# Signals: the example stops on SIGTERM (and SIGINT) sent to the pid it prints.
check_signal() { # $1: signal name
    out=$(mktemp)
    "$b/examples/signals" >"$out" 2>&1 &
    i=0
    while ! grep -q '^pid ' "$out" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    pid=$(sed -n 's/^pid \([0-9]*\):.*/\1/p' "$out")
    sleep 0.2
    kill -s "$1" "$pid"
    wait $! ; status=$?
    if grep -qx "got signal SIG$1: exit" "$out" && [ "$status" -eq 0 ]; then
        echo "PASS: signals stopped on SIG$1"
    else
        echo "FAIL: signals on SIG$1 (status $status): $(cat "$out")"; fail=1
    fi
    rm -f "$out"
}
check_signal TERM
check_signal INT

check_greeting hello_world "Hello World"

# The create_subprocess_exec example: python3's date line, then its exit code.
out=$("$b/examples/subprocess_exec" 2>&1) || true
if printf '%s\n' "$out" | head -1 | grep -qE '^Current date: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+$' &&
    [ "$(printf '%s\n' "$out" | sed -n 2p)" = "python3 exited with 0" ] &&
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 2 ]; then
    echo "PASS: subprocess_exec printed the date and exit code 0"
else
    echo "FAIL: subprocess_exec printed '$out'"; fail=1
fi

check_greeting coro_hello_world "Hello World!"
check_dates display_date &
p1=$!
check_dates coro_display_date &
p2=$!
wait $p1 || fail=1
wait $p2 || fail=1
exit $fail
