#!/usr/bin/env bash
# Run the example site: build Kennel and the example handler, load the
# site's SQL into a fresh config database, start the handlers, and serve
# http://127.0.0.1:6767/ in the foreground. Ctrl-C stops everything.
#
#   bash examples/run.sh           serve until Ctrl-C
#   bash examples/run.sh --check   start everything, fetch each route once,
#                                  stop everything; exit 0 if all answered
#
# Works from any directory: it runs from the repository root, which is
# where the paths in examples/site/config.sql point from.
set -euo pipefail

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

mode=serve
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."

site=examples/site
db=$site/config.sqlite
logs=$site/logs
url=http://127.0.0.1:6767
# How long --check waits for Kennel to answer, in tenths of a second (30 s).
startup_tenths=300

echo "==> building kennel and hello-handler (release; the first build takes a few minutes)"
cargo build --release --quiet -p kennel -p kennel-example-handler

mkdir -p "$site/run" "$logs"
# A pid file left by a server that is no longer running would stop a new one.
pid_file=$site/run/kennel.pid
if [[ -f $pid_file ]] && ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    rm -f "$pid_file"
fi

echo "==> loading $site/config.sql into $db"
rm -f "$db" "$db-journal" "$db-wal" "$db-shm"
target/release/kennel load --db "$db" "$site/config.sql"

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
target/release/hello-handler >>"$logs/hello-handler.log" 2>&1 &
started+=($!)
python=no
if python3 -c 'import zmq' 2>/dev/null; then
    python3 -u examples/python/hello.py >>"$logs/hello-py.log" 2>&1 &
    started+=($!)
    python=yes
else
    echo "    (no pyzmq: /py/ will not be answered; 'python3 -m pip install pyzmq' enables it)"
fi

serve=(target/release/kennel serve --db "$db" --server example)

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
same chat over a WebSocket, once the server speaks WebSocket: Mongrel2 does).
Ctrl-C stops Kennel and the handlers.

EOF
    status=0
    "${serve[@]}" || status=$?
    exit "$status"
fi

# --check: serve in the background, fetch every route, stop.
echo "==> starting kennel (log in $logs/kennel.log)"
"${serve[@]}" >>"$logs/kennel.log" 2>&1 &
kennel=$!
started+=("$kennel")

echo "==> waiting for $url/ (at most $((startup_tenths / 10)) s)"
up=no
for _ in $(seq "$startup_tenths"); do
    if curl -s -o /dev/null --max-time 1 "$url/"; then
        up=yes
        break
    fi
    if ! kill -0 "$kennel" 2>/dev/null; then
        echo "kennel exited before answering; the end of $logs/kennel.log:" >&2
        tail -n 20 "$logs/kennel.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ $up == no ]]; then
    echo "kennel did not answer $url/ in time; the end of $logs/kennel.log:" >&2
    tail -n 20 "$logs/kennel.log" >&2
    exit 1
fi

# /ws-chat.html is only the page: its WebSocket is not checked here (Kennel
# does not serve WebSockets yet; a plain GET of /ws/chat is the handler's 426).
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
if [[ $failed == 0 ]]; then
    echo "==> every route answered"
else
    echo "==> some routes failed; logs are in $logs/" >&2
fi
exit "$failed"
