#!/usr/bin/env bash
# Run the example site: build Kennel and the example handler, load the
# site's SQL into a fresh config database, start the handlers, and serve
# http://127.0.0.1:6767/ in the foreground. Ctrl-C stops everything.
#
#   bash examples/run.sh           serve until Ctrl-C
#   bash examples/run.sh --check   start everything, fetch each route once,
#                                  stop everything; exit 0 if all answered
#   bash examples/run.sh --reload  apply the SQL again to the running site's
#                                  database and send its Kennel SIGHUP
#
# The SQL is examples/site/config.sql, then examples/site/local.sql if it
# exists (git ignores it: put your own routes there).
#
# Environment:
#   KENNEL_EXAMPLE_PORT          the HTTP port (default 6767)
#   KENNEL_EXAMPLE_HANDLER_PORT  the first of the four handler ports
#                                (default 9994: 9994 to 9997)
#   CARGO_TARGET_DIR             where cargo builds (default target/)
#
# Works from any directory: it runs from the repository root, which is
# where the paths in examples/site/config.sql point from.
set -euo pipefail

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
fail() {
    echo "run.sh: $*" >&2
    exit 1
}

mode=serve
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    --reload) mode=reload ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
esac

# What this script runs, and where each comes from when it is missing.
need() {
    local program=$1 what=$2
    command -v "$program" >/dev/null 2>&1 || fail "needs $program: install $what"
}
need cargo "the Rust toolchain (https://rustup.rs)"
for program in cat dirname grep mkdir rm sed seq sleep tail wc; do
    need "$program" "coreutils, grep and sed (Debian: apt-get install coreutils grep sed)"
done
if [[ $mode == check ]]; then
    need curl "curl (Debian: apt-get install curl), which --check fetches the pages with"
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=${KENNEL_EXAMPLE_PORT:-6767}
handler_port=${KENNEL_EXAMPLE_HANDLER_PORT:-9994}
[[ $port =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) ||
    fail "KENNEL_EXAMPLE_PORT must be a port number, not '$port'"
[[ $handler_port =~ ^[0-9]+$ ]] && ((handler_port >= 1 && handler_port <= 65532)) ||
    fail "KENNEL_EXAMPLE_HANDLER_PORT must be a port number up to 65532, not '$handler_port'"
# Handler 2 (Python) gets the first two ports, handler 1 (Rust) the next two,
# as config.sql has them: 9994 and 9995, 9996 and 9997.
py_recv=tcp://127.0.0.1:$handler_port
py_send=tcp://127.0.0.1:$((handler_port + 1))
rust_recv=tcp://127.0.0.1:$((handler_port + 2))
rust_send=tcp://127.0.0.1:$((handler_port + 3))

site=examples/site
db=$site/config.sqlite
logs=$site/logs
local_sql=$site/local.sql
pid_file=$site/run/kennel.pid
url=http://127.0.0.1:$port
# This script as it was called (with its port settings), for the hints it prints.
myself="bash examples/run.sh"
if [[ $port != 6767 || $handler_port != 9994 ]]; then
    myself="KENNEL_EXAMPLE_PORT=$port KENNEL_EXAMPLE_HANDLER_PORT=$handler_port $myself"
fi
bin=${CARGO_TARGET_DIR:-target}/release
kennel_bin=$bin/kennel
# How long --check waits for Kennel to listen, in tenths of a second (30 s).
startup_tenths=300

echo "==> building kennel and hello-handler (release; the first build takes a few minutes)"
cargo build --release --quiet -p kennel -p kennel-example-handler

mkdir -p "$site/run" "$logs"

# The pid of the Kennel serving this site, from its pid file, if one runs.
# A pid file left by a server that is gone (or whose pid now belongs to
# another program) is removed, since it would stop a new server.
running_kennel() {
    local pid
    [[ -f $pid_file ]] || return 1
    pid=$(cat "$pid_file")
    if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == kennel ]]; then
        echo "$pid"
        return 0
    fi
    rm -f "$pid_file"
    return 1
}

# The SQL of the site, in one file so that `kennel load` applies it in one
# transaction: config.sql, the ports chosen above, then local.sql.
site_sql=$site/run/site.sql
write_site_sql() {
    {
        cat "$site/config.sql"
        echo
        echo "-- run.sh: the ports (KENNEL_EXAMPLE_PORT, KENNEL_EXAMPLE_HANDLER_PORT)"
        echo "UPDATE server SET port = $port WHERE id = 1;"
        echo "UPDATE handler SET send_spec = '$rust_send', recv_spec = '$rust_recv' WHERE id = 1;"
        echo "UPDATE handler SET send_spec = '$py_send', recv_spec = '$py_recv' WHERE id = 2;"
        if [[ -f $local_sql ]]; then
            echo
            echo "-- run.sh: $local_sql"
            cat "$local_sql"
        fi
    } >"$site_sql"
}

if [[ $mode == reload ]]; then
    pid=$(running_kennel) ||
        fail "no example site is running (no live Kennel in $pid_file); start it with: $myself"
    write_site_sql
    # config.sql starts by deleting the site's rows, so applying it again
    # to the live database gives the same rows as a fresh start.
    echo "==> applying $site/config.sql$([[ -f $local_sql ]] && echo " and $local_sql") to $db"
    "$kennel_bin" load --db "$db" "$site_sql"
    "$kennel_bin" check --db "$db" --server example
    echo "==> kill -HUP $pid: Kennel re-reads $db"
    kill -HUP "$pid"
    exit 0
fi

# Stop before touching anything if this site, or anything else, already
# has the ports: a second server would fail, and its database is in use.
if pid=$(running_kennel); then
    fail "the example site is already running (Kennel pid $pid, $pid_file, serving $db).
Stop it first (kill $pid), or, to apply changed SQL to it, run: $myself --reload"
fi
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_taken "$port"; then
    fail "port $port on 127.0.0.1 is already in use by another program.
Stop it, or choose another port: KENNEL_EXAMPLE_PORT=$((port == 7000 ? 7001 : 7000)) KENNEL_EXAMPLE_HANDLER_PORT=$handler_port bash examples/run.sh${1:+ $1}"
fi
for p in $(seq "$handler_port" $((handler_port + 3))); do
    if port_taken "$p"; then
        fail "handler port $p on 127.0.0.1 is already in use (another Kennel's handler socket?).
Stop that program, or choose other ports: KENNEL_EXAMPLE_PORT=$port KENNEL_EXAMPLE_HANDLER_PORT=$((handler_port == 29994 ? 39994 : 29994)) bash examples/run.sh${1:+ $1}"
    fi
done

write_site_sql
echo "==> loading $site/config.sql$([[ -f $local_sql ]] && echo " and $local_sql") into $db"
rm -f "$db" "$db-journal" "$db-wal" "$db-shm"
"$kennel_bin" load --db "$db" "$site_sql"

# Where each log stood before this run, so that an excerpt shows this run only.
declare -A log_start
for log in kennel hello-handler hello-py; do
    log_start[$log]=$(wc -c 2>/dev/null <"$logs/$log.log" || echo 0)
done
# The last lines this run wrote to log $1.
show_log() {
    local file=$logs/$1.log
    echo "---- the end of $file (this run) ----" >&2
    tail -c "+$((log_start[$1] + 1))" "$file" 2>/dev/null | tail -n 20 >&2
    echo "----" >&2
}

# Everything started below is stopped on the way out, whatever the reason.
started=()
stop_all() {
    local pid
    for pid in "${started[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    # Give each a bounded moment to finish (Kennel drains in-flight work),
    # then insist.
    for pid in "${started[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    started=()
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "==> starting the handlers (logs in $logs/)"
"$bin/hello-handler" --send-spec "$rust_send" --recv-spec "$rust_recv" \
    >>"$logs/hello-handler.log" 2>&1 &
started+=($!)
python=no
if command -v python3 >/dev/null 2>&1 && python3 -c 'import zmq' 2>/dev/null; then
    python3 -u examples/python/hello.py --send-spec "$py_send" --recv-spec "$py_recv" \
        >>"$logs/hello-py.log" 2>&1 &
    started+=($!)
    python=yes
else
    echo "    (no python3 with pyzmq: /py/ will not be answered; install python3 (Debian: apt-get install python3)"
    echo "     and pyzmq (python3 -m pip install pyzmq, or Debian's python3-zmq) to enable it)"
fi

serve=("$kennel_bin" serve --db "$db" --server example)

if [[ $mode == serve ]]; then
    cat <<EOF

Kennel serves the example site at $url/
Try:
  curl $url/hello
  curl $url/users/42
  curl -N $url/stream
  curl -N $url/chat/listen              # in one terminal,
  curl '$url/chat/say?msg=hello'        # and in another
EOF
    if [[ $python == yes ]]; then
        echo "  curl $url/py/"
    fi
    cat <<EOF
or open $url/chat in two browser windows (or $url/ws-chat.html, the
same chat over a WebSocket).

To add a route while it runs, put SQL in $local_sql (see
docs/getting-started.md), then in another terminal:
  $myself --reload
Ctrl-C stops Kennel and the handlers.

EOF
    status=0
    "${serve[@]}" || status=$?
    exit "$status"
fi

# --check: serve in the background, fetch every route, stop.
echo "==> starting kennel (log in $logs/kennel.log)"
NO_COLOR=1 "${serve[@]}" >>"$logs/kennel.log" 2>&1 &
kennel=$!
started+=("$kennel")

# Our Kennel is up when it has written its pid file and says it listens.
# Asking the port is not enough: another server may answer there.
echo "==> waiting for kennel (pid $kennel) to listen on 127.0.0.1:$port (at most $((startup_tenths / 10)) s)"
up=no
for _ in $(seq "$startup_tenths"); do
    if ! kill -0 "$kennel" 2>/dev/null; then
        wait "$kennel" && status=0 || status=$?
        echo "run.sh: kennel exited (status $status) before it listened" >&2
        show_log kennel
        exit 1
    fi
    if [[ $(cat "$pid_file" 2>/dev/null) == "$kennel" ]] &&
        tail -c "+$((log_start[kennel] + 1))" "$logs/kennel.log" | grep -q "listening addr=127.0.0.1:$port "; then
        up=yes
        break
    fi
    sleep 0.1
done
if [[ $up == no ]]; then
    echo "run.sh: kennel (pid $kennel) did not listen on 127.0.0.1:$port in time" >&2
    show_log kennel
    exit 1
fi

paths=(/ /hello /stream /users/7 /ws-chat.html)
if [[ $python == yes ]]; then
    paths+=(/py/)
fi
failed=0
for path in "${paths[@]}"; do
    echo
    echo "==> GET $path"
    if ! curl -sS --fail --include --max-time 10 "$url$path"; then
        echo "FAILED: GET $path" >&2
        failed=1
    fi
done
echo
if ! kill -0 "$kennel" 2>/dev/null; then
    echo "run.sh: kennel (pid $kennel) stopped while the pages were fetched" >&2
    show_log kennel
    failed=1
elif [[ $failed == 0 ]]; then
    echo "==> every route answered"
else
    echo "==> some routes failed; logs are in $logs/" >&2
    show_log kennel
    show_log hello-handler
    if [[ $python == yes ]]; then
        show_log hello-py
    fi
fi
exit "$failed"
