#!/bin/bash
# tests/rolling_restart.sh: zero-loss binary upgrades behind a real HAProxy.
# Three coreiod instances serve whoami (tests/whoami_module.c: a line, then
# echo) on a PROXY v2 listener behind HAProxy (roundrobin, checks with LOCAL
# headers, agent checks, and "retries 0", so that HAProxy hides no failed
# connect). tests/lb_load.py runs throughout: 8 loops of short connections
# and 8 long ones exchanging a line every 0.1 s, which reconnect when the
# server closes them after a completed exchange (whoami's drain). Each
# instance is upgraded in place with SIGUSR2 five times in turn (15
# hand-overs): each time the script waits for the pid file to name the new
# process and for the old one to exit. Then:
#  - the load saw 0 failed connections and 0 failed requests, and HAProxy no
#    change of a server's state (its checks and agent checks all passed);
#  - every process that served was greeted by the load (the new ones took over);
#  - the admin and agent ports answer (/health 200, "up ready N%");
#  - each final process holds as many descriptors as it did fresh;
#  - the logs hold no warning, and SIGTERM stops each final process.
# All this with workers = 1, then with workers = 2 and balance = reuseport
# (each worker's socket handed over). Waits have generous deadlines; no
# duration is asserted.
# Exit 0: pass, 77: skipped (no haproxy, compiler or pkg-config), 1: fail.
set -euo pipefail
. "$(dirname "$0")/testlib.sh"
. "$(dirname "$0")/haproxy_lib.sh"

ROUNDS=${ROUNDS:-5}

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
fds_are() { [ "$(fds "$1")" -eq "$2" ]; }
# Does pid file $1 name a live process other than $2?
pid_moved() {
    local p
    p=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$p" ] && [ "$p" != "$2" ] && alive "$p"
}
gone() { ! alive "$1"; }

# instance NAME WORKERS BALANCE PORT ADMIN AGENT: write $tmp/NAME.ini, start it with its
# pid file $tmp/NAME.pid, wait for that file. Sets $pid.
instance() {
    cat >"$tmp/$1.ini" <<EOF
[global]
workers = $2
admin = 127.0.0.1:$5
agent = 127.0.0.1:$6
drain_timeout = 2s
idle_poll = 0

[module whoami]
path = whoami.so

[listener lb]
service = whoami
address = 127.0.0.1:$4
balance = $3
proxy_protocol = v2
proxy_trusted = 127.0.0.1/32, ::1
EOF
    pidfiles+=("$tmp/$1.pid")
    start_coreiod "$1" "$tmp/$1.ini" --pid-file "$tmp/$1.pid"
    wait_until 10 pid_moved "$tmp/$1.pid" none || {
        bad "$1: no pid file $tmp/$1.pid naming a live process"
        show "$tmp/$1.log"
        exit 1
    }
    [ "$(cat "$tmp/$1.pid")" = "$pid" ] || bad "$1: the pid file says $(cat "$tmp/$1.pid"), not $pid"
}

# Has the upgrade of pid file $1's process $2 (log $3, $4 lines long before it) ended:
# the file names a new process, or the log says the upgrade failed?
upgrade_settled() {
    pid_moved "$1" "$2" || tail -n +"$(($4 + 1))" "$3" | grep -q 'upgrade failed'
}

# upgrade NAME: SIGUSR2 to the process NAME's pid file names; wait for the new one to
# rewrite the file and the old one to exit. Appends the new pid to $served_pids and
# counts the upgrade in $upgrades.
upgrade() {
    local log=$tmp/$1.log old new t0 lines
    old=$(cat "$tmp/$1.pid")
    lines=$(wc -l <"$log")
    t0=$(date +%s%N)
    kill -USR2 "$old"
    wait_until 30 upgrade_settled "$tmp/$1.pid" "$old" "$log" "$lines" || true
    if ! pid_moved "$tmp/$1.pid" "$old"; then
        bad "$1: SIGUSR2 to $old started no new process (the pid file says '$(cat "$tmp/$1.pid")'):"
        tail -n +"$((lines + 1))" "$log" | show /dev/stdin
        return 1
    fi
    new=$(cat "$tmp/$1.pid")
    if ! wait_until 30 gone "$old"; then
        bad "$1: the old process $old still runs 30 s after SIGUSR2"
        return 1
    fi
    wait "$old" 2>/dev/null || true # only the first generation is the script's child
    served_pids+=("$new")
    upgrades=$((upgrades + 1))
    echo "  $1: $old -> $new in $((($(date +%s%N) - t0) / 1000000)) ms"
}

# run_case TITLE WORKERS BALANCE
run_case() {
    local title=$1 workers=$2 balance=$3 x i status c p cfg
    local -A port fresh
    echo "---- $title: workers = $workers, balance = $balance"
    served_pids=()
    upgrades=0
    local ps front
    read -r -a ps < <(free_ports 10) # in one go: distinct
    front=${ps[9]}
    i=0
    for x in a b c; do
        port[$x]=${ps[i]}
        port[$x-admin]=${ps[i + 1]}
        port[$x-agent]=${ps[i + 2]}
        instance "$title-$x" "$workers" "$balance" "${ps[i]}" "${ps[i + 1]}" "${ps[i + 2]}"
        i=$((i + 3))
        served_pids+=("$pid")
        fresh[$x]=$(fds "$pid")
    done
    cfg=$tmp/$title-haproxy.cfg
    cat >"$cfg" <<EOF
global
    stats socket $tmp/haproxy.sock level admin
    log stderr format raw local0 notice

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout check 5s
    retries 0

listen lb
    bind 127.0.0.1:$front
    balance roundrobin
    option tcp-check
    tcp-check expect string proxy=v2\\ local=1
EOF
    for x in a b c; do
        echo "    server $x 127.0.0.1:${port[$x]} send-proxy-v2 weight 100 check check-send-proxy inter 200ms" \
            "agent-check agent-port ${port[$x-agent]} agent-inter 200ms" >>"$cfg"
    done
    rm -f "$tmp/haproxy.sock"
    start_haproxy "$cfg"
    for x in a b c; do
        wait_until 20 checked_up lb "$x" L7OK ||
            bad "$title: lb/$x is '$(hstatus lb "$x" || true)', '$(hstatus lb "$x" check_status || true)'"
    done

    local hlines
    hlines=$(wc -l <"$tmp/haproxy.log")
    rm -f "$tmp/load.stop" "$tmp/load.ready"
    "$py" "$srcdir/tests/lb_load.py" --stop-file "$tmp/load.stop" --ready-file "$tmp/load.ready" \
        127.0.0.1 "$front" >"$tmp/$title-load.out" 2>&1 &
    local load=$!
    pids+=("$load")
    wait_until 10 test -s "$tmp/load.ready" || bad "$title: lb_load.py did not start"
    sleep 1 # connections of every kind on every instance before the first upgrade
    for _ in $(seq "$ROUNDS"); do
        for x in a b c; do
            upgrade "$title-$x" || break 2
            sleep 0.5 # the new process serves a while before the next upgrade
        done
    done
    sleep 1 # the last new process serves some load too
    touch "$tmp/load.stop"
    status=0
    wait "$load" || status=$?
    local summary
    summary=$(head -1 "$tmp/$title-load.out")
    if [ $upgrades -ne $((ROUNDS * 3)) ]; then
        bad "$title: $upgrades upgrades of $((ROUNDS * 3)); the load: $summary"
    elif [ $status -eq 0 ] && grep -q ' failed_conns=0 .* failed_requests=0$' <<<"$summary"; then
        pass "$title: $upgrades upgrades under load: $summary"
    else
        bad "$title: the load (exit $status) through $upgrades upgrades:"
        show "$tmp/$title-load.out"
        show "$tmp/haproxy.log" 20
    fi
    # No check or agent check ever failed: HAProxy logged no change of a server's state.
    c=$(tail -n +"$((hlines + 1))" "$tmp/haproxy.log" | grep -F 'Server lb/' || true)
    [ -z "$c" ] && pass "$title: HAProxy saw no server change state through the upgrades" ||
        bad "$title: HAProxy logged: $c"
    # Each process that ever ran was greeted by some connection of the load.
    local served unserved=()
    served=$(sed -n 's/^served: //p' "$tmp/$title-load.out")
    for p in "${served_pids[@]}"; do
        grep -qE "(^| )$p=" <<<"$served" || unserved+=("$p")
    done
    [ ${#unserved[@]} -eq 0 ] && pass "$title: each of the ${#served_pids[@]} processes served" ||
        bad "$title: processes that served nothing: ${unserved[*]} (served: $served)"

    for x in a b c; do
        checks_never_failed lb "$x" && pass "$title: no check of lb/$x ever failed" ||
            bad "$title: lb/$x: $(hstatus lb "$x" chkfail) failed checks, $(hstatus lb "$x" chkdown) times DOWN"
    done
    kill -TERM "$hpid"
    wait "$hpid" 2>/dev/null || true
    for x in a b c; do
        p=$(cat "$tmp/$title-$x.pid")
        # The admin and agent sockets moved with the others: the final process answers.
        local health agent_line
        health=$("${peer[@]}" http 127.0.0.1 "${port[$x-admin]}" GET /health 2>&1) || true
        agent_line=$("${peer[@]}" agent 127.0.0.1 "${port[$x-agent]}" 2>&1) || true
        if [ "$health" = "200 serving" ] && grep -qE '^up ready [0-9]+%$' <<<"$agent_line"; then
            pass "$title-$x: the final process's admin port says '$health', its agent '$agent_line'"
        else
            bad "$title-$x: after the upgrades, /health says '$health', the agent '$agent_line'"
        fi
        if wait_until 10 fds_are "$p" "${fresh[$x]}"; then
            pass "$title-$x: the final process $p holds ${fresh[$x]} descriptors, as fresh"
        else
            bad "$title-$x: the final process $p holds $(fds "$p") descriptors, fresh ${fresh[$x]}:"
            ls -l "/proc/$p/fd" | sed 's/^/    | /'
        fi
        c=$(log_complaints "$tmp/$title-$x.log")
        [ -z "$c" ] || bad "$title-$x: warnings in the log: $c"
        kill -TERM "$p"
        if wait_until 20 gone "$p"; then
            pass "$title-$x: SIGTERM stops the final process"
        else
            bad "$title-$x: $p still runs 20 s after SIGTERM"
        fi
        wait "$p" 2>/dev/null || true
    done
}

run_case single 1 reuseport
run_case reuseport 2 reuseport
exit $fail
