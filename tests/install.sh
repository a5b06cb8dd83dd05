#!/bin/bash
# tests/install.sh: `make install DESTDIR=...` and what a user then builds.
# Stages an install (no root needed), checks that every public header, the
# man pages and the systemd unit are there and that the man pages and the
# unit name the configuration file where install put it, runs the staged
# coreiod on that file, and builds examples/hello_world.c out of the tree
# with nothing but `pkg-config --cflags --libs coreio`: against the staged
# install (shared and static libcoreio) and against the build tree
# (coreio-uninstalled.pc, which runs without LD_LIBRARY_PATH).
# Exit 0: pass, 77: skipped (no pkg-config or no shared library), 1: fail.
set -euo pipefail

b=$(cd "${top_builddir:-.}" && pwd)
s=$(cd "${top_srcdir:-..}" && pwd)
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "SKIP: pkg-config not found"
    exit 77
fi
if [ ! -f "$b/.libs/libcoreio.so" ]; then
    echo "SKIP: no shared library built"
    exit 77
fi
# The compiler and sanitizer flags of the build: a program linked with an
# instrumented libcoreio must be instrumented too.
mkvar() { sed -n "s/^$1 = //p" "$b/Makefile"; }
cc=$(mkvar CC)
read -r -a san <<<"$(mkvar CIO_SAN_CFLAGS)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage

. "$(dirname "$0")/testlib.sh"

# Run the program $1 (with the environment of the rest) and expect "Hello World".
greets() {
    local out
    out=$(env "${@:2}" "$1" 2>&1) && [ "$out" = "Hello World" ]
}

# ---- the staged install ------------------------------------------------------
# A make of its own, not the jobserver or the variables of the make check
# that runs this test.
if ! (cd "$b" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make install DESTDIR="$stage") \
    >"$tmp/install.log" 2>&1; then
    bad "make install DESTDIR=$stage:"
    tail -30 "$tmp/install.log" | sed 's/^/    | /'
    exit 1
fi
pass "make install DESTDIR=... as user $(id -un)"
if grep -q '^ ldconfig$' "$tmp/install.log"; then
    bad "make install DESTDIR=... ran ldconfig (only a real install should)"
else
    pass "make install DESTDIR=... leaves the linker cache alone"
fi

# Where things went, relative to the stage: /usr/local/... by default.
staged() { (cd "$stage" && find . -path "$1" | sed 's|^\.||'); }
pc=$(staged '*/pkgconfig/coreio.pc')
ini=$(staged '*/coreio/coreio.ini')
unit=$(staged '*/coreiod.service')
coreiod=$(staged '*/bin/coreiod')
lib=$(staged '*/libcoreio.so.0')
man8=$(staged '*/man8/coreiod.8')
man5=$(staged '*/man5/coreio.ini.5')
man1=$(staged '*/man1/coreio-bench.1')
for f in pc ini unit coreiod lib man8 man5 man1; do
    [ -n "${!f}" ] || bad "make install put no $f into $stage"
done
[ $fail -eq 0 ] || exit 1
pass "installed: $pc, $ini, $unit, $coreiod, $lib, three man pages"

incdir=$(dirname "$(staged '*/include/coreio.h')")
missing=
for h in "$s"/include/coreio/*.h; do
    [ -f "$stage$incdir/coreio/${h##*/}" ] || missing="$missing ${h##*/}"
done
if [ -z "$missing" ]; then pass "every public header is installed in $incdir/coreio"; else
    bad "public headers not installed:$missing"; fi

# The man pages and the unit name the file that install wrote.
for page in "$man8" "$man5"; do
    if grep -qF -- "$ini" "$stage$page" && ! grep -q '@[a-z]*dir@' "$stage$page"; then
        pass "${page##*/} names $ini"
    else
        bad "${page##*/} does not name $ini, or has @...@ left:"
        grep -n 'coreio\.ini\|@' "$stage$page" | grep -v '^[0-9]*:\.\\"' | head -5 | sed 's/^/    | /'
    fi
done
if grep -qF -- "$unit" "$stage$man8"; then pass "coreiod.8 names $unit"; else
    bad "coreiod.8 does not name $unit"; fi
if grep -qx "ExecStart=$coreiod -c $ini" "$stage$unit"; then
    pass "coreiod.service runs $coreiod -c $ini"
else
    bad "coreiod.service does not run the installed coreiod on $ini:"
    show "$stage$unit"
fi

# The staged daemon, on the staged library, accepts the installed file.
libdir=$(dirname "$lib")
if env LD_LIBRARY_PATH="$stage$libdir" "$stage$coreiod" -t -c "$stage$ini" >"$tmp/t.out" 2>&1; then
    pass "the installed coreiod -t accepts the installed $ini"
else
    bad "installed coreiod -t -c $ini:"
    show "$tmp/t.out"
fi

# ---- out of the tree, against the staged install --------------------------------
# PKG_CONFIG_SYSROOT_DIR moves coreio.pc's -I and -L into the stage.
stagedpc() {
    env PKG_CONFIG_PATH="$stage$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$stage" pkg-config "$@"
}
if flags=$(stagedpc --cflags --libs coreio 2>"$tmp/pc.err") &&
    $cc "${san[@]}" -o "$tmp/hello" "$s/examples/hello_world.c" $flags 2>"$tmp/cc.err" &&
    greets "$tmp/hello" LD_LIBRARY_PATH="$stage$libdir"; then
    pass "hello_world.c built with pkg-config --cflags --libs coreio ($flags) runs on $lib"
else
    bad "hello_world.c against the staged install: flags [$flags]"
    cat "$tmp/pc.err" "$tmp/cc.err" | sed 's/^/    | /'
fi
# A static link needs the libraries of Requires.private and Libs.private.
if [ -f "$stage$libdir/libcoreio.a" ]; then
    flags=$(stagedpc --cflags --static --libs coreio | sed 's/-lcoreio/-Wl,-Bstatic -lcoreio -Wl,-Bdynamic/')
    if $cc "${san[@]}" -o "$tmp/hello_static" "$s/examples/hello_world.c" $flags \
        2>"$tmp/cc.err" && greets "$tmp/hello_static" -u LD_LIBRARY_PATH &&
        ldd "$tmp/hello_static" >"$tmp/ldd" && ! grep -q libcoreio "$tmp/ldd"; then
        pass "hello_world.c linked statically with pkg-config --static --libs coreio runs"
    elif grep -q 'cannot find -l' "$tmp/cc.err" && ! grep -q 'cannot find -lcoreio' "$tmp/cc.err"; then
        # Debian's hwloc.pc wants -ludev, whose libudev-dev libhwloc-dev does not pull in.
        echo "SKIP: static link: a dependency's --static flags name a library not installed:" \
            "$(grep -o 'cannot find -l[^:]*' "$tmp/cc.err" | tr '\n' ' ')"
    else
        bad "static link with pkg-config --static: flags [$flags]"
        show "$tmp/cc.err"
    fi
fi

# ---- out of the tree, against the build tree -------------------------------------
if flags=$(env PKG_CONFIG_PATH="$b" pkg-config --cflags --libs coreio 2>"$tmp/pc.err") &&
    [[ $flags == *"-L$b/.libs"* ]] &&
    $cc "${san[@]}" -o "$tmp/hello_b" "$s/examples/hello_world.c" $flags 2>"$tmp/cc.err" &&
    greets "$tmp/hello_b" -u LD_LIBRARY_PATH && ldd "$tmp/hello_b" >"$tmp/ldd" &&
    grep -qF "$b/.libs/libcoreio.so.0" "$tmp/ldd"; then
    pass "coreio-uninstalled.pc: hello_world.c built against $b runs on its .libs, no LD_LIBRARY_PATH"
else
    bad "hello_world.c against the build tree: flags [$flags]"
    cat "$tmp/pc.err" "$tmp/cc.err" | sed 's/^/    | /'
fi
exit $fail
