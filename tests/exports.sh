#!/bin/sh
# tests/exports.sh: the shared library exports cio_* symbols only, and every
# public header compiles on its own.
set -eu
b=${top_builddir:-.}
s=${top_srcdir:-.}
fail=0
lib="$b/.libs/libcoreio.so"
if [ ! -f "$lib" ]; then
    echo "SKIP: no shared library built"; exit 77
fi
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ && $3 !~ /^cio_/ { print $3 }')
if [ -n "$bad" ]; then
    echo "FAIL: exported symbols outside cio_*: $bad"; fail=1
else
    echo "PASS: only cio_* symbols are exported ($(nm -D --defined-only "$lib" | grep -c ' T cio_') functions)"
fi
for h in "$s"/include/coreio/*.h "$s"/include/coreio.h; do
    if ! echo "#include \"$h\"" | ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -I"$s/include" -fsyntax-only -x c -; then
        echo "FAIL: $h does not compile on its own"; fail=1
    fi
done
[ $fail -eq 0 ] && echo "PASS: every public header compiles on its own"
exit $fail
