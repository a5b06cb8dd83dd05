#!/bin/sh
# tests/examples.sh: run the asyncio documentation examples and check what
# they print.
set -eu
b=${top_builddir:-.}
fail=0

out=$("$b/examples/hello_world")
if [ "$out" = "Hello World" ]; then
    echo "PASS: hello_world printed 'Hello World'"
else
    echo "FAIL: hello_world printed '$out'"; fail=1
fi

# Five seconds, one line a second: five dates, each one second after the last.
start=$(date +%s)
out=$("$b/examples/display_date")
end=$(date +%s)
lines=$(printf '%s\n' "$out" | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}$' || true)
total=$(printf '%s\n' "$out" | wc -l)
if [ "$lines" -eq 5 ] && [ "$total" -eq 5 ] && [ $((end - start)) -ge 3 ]; then
    echo "PASS: display_date printed 5 dates over $((end - start)) s"
else
    echo "FAIL: display_date printed $lines dates in $total lines over $((end - start)) s:"
    printf '%s\n' "$out"; fail=1
fi
# Consecutive dates are one second apart (to within 0.2 s).
gaps=$(printf '%s\n' "$out" | awk '{ split($2, t, ":"); s = t[1]*3600 + t[2]*60 + t[3];
    if (NR > 1) { d = s - prev; if (d < 0) d += 86400; if (d < 0.99 || d > 1.2) bad++ } prev = s }
    END { print bad + 0 }')
if [ "$gaps" -eq 0 ]; then
    echo "PASS: display_date lines are one second apart"
else
    echo "FAIL: $gaps gaps between dates are not one second"; fail=1
fi
exit $fail
