#!/bin/sh
# bench/nginx_hello.sh: nginx as the peer of coreiod's http-hello service in
# bench/http_run.sh (the server protocol of bench/lib.sh).
#
#     sh bench/nginx_hello.sh NGINX PORT [CERT KEY]
#
# Writes an nginx.conf into a private temporary directory (-p prefix: every
# path nginx writes to is in there, so it needs no root) that answers every
# request on 127.0.0.1:PORT with 200 and "Hello, World!\n" from a `return`,
# with one worker process pinned to the first CPU this script may run on
# (`taskset -c 0 sh nginx_hello.sh ...`: CPU 0), no access log, and
# keep-alive without a request limit per connection (nginx's default is 1000;
# coreiod has none, and closing would make the load generator reconnect).
# With CERT and KEY (PEM) it answers over TLS only (bench/tls_run.sh), with
# TLS 1.2 and 1.3, a shared session cache and session tickets on: what a
# production nginx resumes sessions with.
# Runs nginx in the foreground, prints "listening" once it has written its
# pid file (after opening its sockets), and on SIGTERM or SIGINT lets nginx
# shut down and exits with its status.
set -eu
. "$(dirname "$0")/lib.sh"

if [ $# -ne 2 ] && [ $# -ne 4 ]; then
    echo "usage: sh nginx_hello.sh NGINX PORT [CERT KEY]" >&2
    exit 2
fi
nginx=$1
port=$2
listen=
tls=
if [ $# -eq 4 ]; then
    # nginx reads relative paths from its prefix: make them absolute.
    cert=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
    key=$(cd "$(dirname "$4")" && pwd)/$(basename "$4")
    listen=" ssl"
    tls="ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;"
fi

# nginx's CPU mask: a 1 for the first CPU of this process's affinity list
# ("0-1,4" style), the rightmost digit being CPU 0.
cpu=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "/proc/$$/status" | sed 's/[-,].*//')
mask=1
i=0
while [ $i -lt "$cpu" ]; do
    mask=${mask}0
    i=$((i + 1))
done

dir=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill -KILL "$pid" 2>/dev/null || :
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity $mask;
error_log stderr warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    keepalive_requests 1000000000;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;

    server {
        listen 127.0.0.1:$port$listen;
        $tls
        location / {
            default_type text/plain;
            return 200 "Hello, World!\\n";
        }
    }
}
EOF

# -e (nginx 1.19.5 and later) keeps the log of the start-up, before the file
# is read, off the compiled-in path, which may not be writable.
global="daemon off; pid $dir/nginx.pid;"
set -- -p "$dir/" -c "$dir/nginx.conf" -g "$global"
if "$nginx" -e stderr "$@" -t >/dev/null 2>&1; then
    set -- -e stderr "$@"
elif ! "$nginx" "$@" -t >"$dir/check" 2>&1; then
    cat "$dir/check" >&2
    exit 1
fi

"$nginx" "$@" </dev/null >/dev/null &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || :' TERM INT

# Wait up to 10 s for the pid file; nginx exits at once if it cannot listen.
i=0
until [ -s "$dir/nginx.pid" ]; do
    if ! alive "$pid" || [ $i -ge 200 ]; then
        exit 1
    fi
    sleep 0.05
    i=$((i + 1))
done
echo listening

# A signal interrupts wait; wait again until nginx itself has exited.
while :; do
    status=0
    wait "$pid" || status=$?
    kill -0 "$pid" 2>/dev/null || break
done
pid=
exit "$status"
