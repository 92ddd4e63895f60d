#!/usr/bin/env bash
# Kennel vs Mongrel2 vs nginx, on one machine, in one run.
#
#   bash bench/run.sh                      the full run (about 25 minutes)
#   BENCH_SECONDS=2 BENCH_REPS=1 bash bench/run.sh    a quick check (about 5 minutes)
#   bash bench/run.sh l m                  only the scenarios named (a-o, fh;
#                                          the same as BENCH_SCENARIOS="l m")
#
# Installs what is missing (wrk, nginx, mongrel2-core, and for the TLS and
# reload scenarios openssl and sqlite3, from Debian), builds
# Kennel and the bench handler in release mode, generates a static tree and
# one config per server under bench/work/, and runs every scenario against
# every server, one server at a time, the server (and handler) pinned to one
# core and the load generator to the other. Prints the table on stdout and
# writes it to bench/results-latest.md; progress goes to stderr. Exits 0
# whether or not the targets hold (the table says which do); non-zero only
# when it cannot run at all. See bench/README.md.
#
# Knobs (environment):
#   BENCH_SECONDS=10          length of each load run (scenarios a-d, i, k-o)
#   BENCH_LATENCY_SECONDS=5   length of each unloaded run (scenario e)
#   BENCH_REPS=3              repetitions of every scenario (>= 3 for a report)
#   BENCH_CONNS=64            connections for a-d, i and k-n (o: half each
#                             on the handler route and the static route)
#   BENCH_IDLE_CONNS=10000    idle connections per server (f, fh, j)
#   BENCH_IDLE_CONNS_BIG=100000   idle connections, Kennel alone (f)
#   BENCH_IDLE_REQUEST=...    request each idle connection sends first (f);
#                             default GET /static/1k.bin; empty = none
#   BENCH_IDLE_HANDLER_REQUEST=...  the same for fh; default GET /bench/hello
#   BENCH_WS_PAYLOAD=32       bytes in each WebSocket echo message (i)
#   BENCH_BROADCAST_CONNS=1000    listeners for the broadcast (g)
#   BENCH_NOHANDLER_TRIES=5   requests timed with no handler (h)
#   BENCH_CONNECT_WAIT_MS=500 Kennel's kennel.handler.connect_wait_ms (h)
#   BENCH_BACKEND_CPU=1       CPU of the proxy back end (k); default the
#                             server's (see README, "Scenarios")
#   BENCH_RELOADS=20          reloads (SIGHUP) spread over o's load run
#   BENCH_SERVERS="kennel mongrel2 nginx"   which servers to run
#   BENCH_SCENARIOS="a b c d e f fh g h i j k l m n o"   which scenarios to run
#   BENCH_PORT_BASE=18080     first of the fixed loopback ports (see README)
#   BENCH_NO_INSTALL=1        never call apt-get; fail if a tool is missing
#   CARGO_TARGET_DIR          where cargo builds (default target/)
set -euo pipefail

# The header comment above, up to the first line that is not a comment.
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
all_scenarios="a b c d e f fh g h i j k l m n o"
named=()
for arg in "$@"; do
    case $arg in
        -h | --help) usage; exit 0 ;;
        *)
            [[ " $all_scenarios " == *" $arg "* ]] || {
                echo "run.sh: unknown scenario '$arg' (known: $all_scenarios)" >&2
                usage >&2
                exit 2
            }
            named+=("$arg")
            ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

# ---------------------------------------------------------------- knobs
seconds=${BENCH_SECONDS:-10}
latency_seconds=${BENCH_LATENCY_SECONDS:-$((seconds < 5 ? seconds : 5))}
reps=${BENCH_REPS:-3}
conns=${BENCH_CONNS:-64}
idle_conns=${BENCH_IDLE_CONNS:-10000}
idle_conns_big=${BENCH_IDLE_CONNS_BIG:-100000}
idle_request=${BENCH_IDLE_REQUEST-'GET /static/1k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n'}
idle_handler_request=${BENCH_IDLE_HANDLER_REQUEST:-'GET /bench/hello HTTP/1.1\r\nHost: localhost\r\n\r\n'}
ws_payload=${BENCH_WS_PAYLOAD:-32}
broadcast_conns=${BENCH_BROADCAST_CONNS:-1000}
nohandler_tries=${BENCH_NOHANDLER_TRIES:-5}
connect_wait_ms=${BENCH_CONNECT_WAIT_MS:-500}
reloads=${BENCH_RELOADS:-20}
servers=${BENCH_SERVERS:-kennel mongrel2 nginx}
scenarios=${BENCH_SCENARIOS:-$all_scenarios}
((${#named[@]} == 0)) || scenarios=${named[*]}
port_base=${BENCH_PORT_BASE:-18080}

# How long Mongrel2 is given to answer a request with no handler (h); it
# never does, so this is how long the run waits to say so.
nohandler_max_s=5
# How long a server may take to start answering, in tenths of a second.
startup_tenths=150
# How long idle-conns may take to open its connections (f), in seconds.
idle_open_timeout_s=180
# The broadcast tool's batch: Mongrel2's limits.handler_targets default.
broadcast_batch=128

# Fixed loopback ports (README "Ports"): one HTTP port per server, and the
# ZeroMQ pairs of the three handler rows in bench/config/site.sql.in.
declare -A http_port=(
    [kennel]=$port_base [mongrel2]=$((port_base + 1)) [nginx]=$((port_base + 2))
)
# The proxy scenario's back end (k), behind every server's /proxy/ route.
backend_port=$((port_base + 3))
# The TLS scenarios (l-n): each server's HTTPS port.
declare -A tls_port=(
    [kennel]=$((port_base + 4)) [mongrel2]=$((port_base + 5)) [nginx]=$((port_base + 6))
)
hello_send=tcp://127.0.0.1:$((port_base + 10))
hello_recv=tcp://127.0.0.1:$((port_base + 11))
listen_send=tcp://127.0.0.1:$((port_base + 12))
listen_recv=tcp://127.0.0.1:$((port_base + 13))
absent_send=tcp://127.0.0.1:$((port_base + 14))
absent_recv=tcp://127.0.0.1:$((port_base + 15))
declare -A server_uuid=(
    [kennel]=4b3e0a6c-1f52-4d7e-9c10-6b656e6e656c
    [mongrel2]=4b3e0a6c-1f52-4d7e-9c10-6d6f6e677232
)
hello_ident=5e1f0b7d-2a63-4e8f-8d21-68656c6c6f21
listen_ident=5e1f0b7d-2a63-4e8f-8d21-6c697374656e
absent_ident=5e1f0b7d-2a63-4e8f-8d21-616273656e74

work=$root/bench/work
raw=$work/raw.tsv
results=$root/bench/results-latest.md
# cargo builds into CARGO_TARGET_DIR when it is set (a relative one is
# relative to the workspace root, where cargo runs below).
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$root/$target_dir
kennel_bin=$target_dir/release/kennel
handler_bin=$target_dir/release/bench-handler
idle_tool=$target_dir/release/idle-conns
broadcast_tool=$target_dir/release/broadcast
floor_tool=$target_dir/release/write-floor
ws_tool=$target_dir/release/ws-echo
tls_tool=$target_dir/release/tls-connect

log() { printf '==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

wants_server() { [[ " $servers " == *" $1 "* ]]; }
wants_scenario() { [[ " $scenarios " == *" $1 "* ]]; }
wants_tls() { wants_scenario l || wants_scenario m || wants_scenario n; }

# ---------------------------------------------------------------- CPUs
# The load generator gets one core, the server under test (with its
# handler) the other. On a machine with more cores, the rest stay idle.
ncpu=$(nproc)
if ((ncpu >= 2)); then
    cpu_load=0
    cpu_server=1
else
    cpu_load=0
    cpu_server=0
    log "only one CPU: the load generator and the server share it (numbers are not comparable to a 2-core run)"
fi
# The proxy back end shares the server's core, as the handler does (README).
cpu_backend=${BENCH_BACKEND_CPU:-$cpu_server}

# ---------------------------------------------------------------- install
install_missing() {
    local need=()
    command -v wrk >/dev/null || need+=(wrk)
    command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
    command -v mongrel2 >/dev/null || need+=(mongrel2-core)
    command -v taskset >/dev/null || need+=(util-linux)
    command -v curl >/dev/null || need+=(curl)
    command -v pgrep >/dev/null || need+=(procps)
    if wants_tls; then command -v openssl >/dev/null || need+=(openssl); fi
    if wants_scenario o; then command -v sqlite3 >/dev/null || need+=(sqlite3); fi
    command -v cargo >/dev/null ||
        die "cargo is missing: install a Rust toolchain (rust-version in Cargo.toml) first"
    ((${#need[@]} == 0)) && return 0
    [[ -n ${BENCH_NO_INSTALL:-} ]] && die "missing: ${need[*]} (and BENCH_NO_INSTALL is set)"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "missing: ${need[*]}; run as root or install them"
        sudo=(sudo)
    fi
    log "installing ${need[*]} (apt-get)"
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >&2
}
install_missing
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# ---------------------------------------------------------------- build
log "building kennel and bench-handler (release)"
cargo build --release --quiet -p kennel -p kennel-bench-handler >&2
if [[ -f bench/tools/Cargo.toml ]]; then
    log "building the bench tools (release)"
    if ! cargo build --release --quiet -p kennel-bench-tools >&2; then
        note "the bench tools did not build; f, fh, g, i, j and n will be skipped"
    fi
fi

# ---------------------------------------------------------------- limits
# Idle connections need descriptors: raise the soft limit to the hard one
# (inherited by every server and tool started below).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
[[ $nofile == unlimited ]] && nofile=1048576
# Kennel's big idle run (f) needs idle_conns_big descriptors and some spare.
# Below that, it runs at the most the limit allows (row fmax) instead.
big_fds_needed=$((idle_conns_big + 1024))
big_max=$(((nofile - 1024) / 1000 * 1000))

# ---------------------------------------------------------------- processes
# Everything started is recorded here and stopped by PID on the way out.
started=()
stop_pid() {
    local pid=$1 _
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
forget_pid() {
    local keep=() p
    for p in "${started[@]}"; do
        [[ $p == "$1" ]] || keep+=("$p")
    done
    started=("${keep[@]}")
}
# shellcheck disable=SC2317 # called by the EXIT trap
stop_all() {
    local pid
    for pid in "${started[@]}"; do
        stop_pid "$pid"
    done
    started=()
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_in_use PORT: something on 127.0.0.1 accepts connections there.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
busy=()
for port in "${http_port[@]}" "$backend_port" "${tls_port[@]}" $(seq $((port_base + 10)) $((port_base + 15))); do
    port_in_use "$port" && busy+=("$port")
done
((${#busy[@]} == 0)) ||
    die "ports in use on 127.0.0.1: ${busy[*]} (stop what holds them, or set BENCH_PORT_BASE)"

# ---------------------------------------------------------------- the site
log "generating the static tree and configs in $work"
rm -rf "$work"
mkdir -p "$work/raw"
: >"$raw"
make_static() {
    mkdir -p "$1/static"
    head -c 1024 /dev/zero | tr '\0' k >"$1/static/1k.bin"
    head -c 1048576 /dev/zero | tr '\0' m >"$1/static/1m.bin"
}
# One database per server (same SQL, different uuid, port and chroot).
make_mongrel2_style() {
    local name=$1 dir=$work/$1
    mkdir -p "$dir/logs" "$dir/run"
    make_static "$dir"
    local max_fd=$((idle_conns + 1024))
    ((max_fd > nofile)) && max_fd=$nofile
    sed -e "s|@SERVER_UUID@|${server_uuid[$name]}|g" \
        -e "s|@CHROOT@|$dir|g" \
        -e "s|@PORT@|${http_port[$name]}|g" \
        -e "s|@HELLO_SEND@|$hello_send|g" -e "s|@HELLO_RECV@|$hello_recv|g" \
        -e "s|@HELLO_IDENT@|$hello_ident|g" \
        -e "s|@LISTEN_SEND@|$listen_send|g" -e "s|@LISTEN_RECV@|$listen_recv|g" \
        -e "s|@LISTEN_IDENT@|$listen_ident|g" \
        -e "s|@ABSENT_SEND@|$absent_send|g" -e "s|@ABSENT_RECV@|$absent_recv|g" \
        -e "s|@ABSENT_IDENT@|$absent_ident|g" \
        -e "s|@MAX_FD@|$max_fd|g" \
        -e "s|@CONNECT_WAIT_MS@|$connect_wait_ms|g" \
        -e "s|@BACKEND_PORT@|$backend_port|g" \
        bench/config/site.sql.in >"$dir/site.sql"
    "$kennel_bin" load --db "$dir/bench.sqlite" "$dir/site.sql" >/dev/null
    wants_tls || return 0
    # The TLS variant (l-n): the same site in tls.sqlite with use_ssl = 1 on
    # the server's TLS port, and the bench certificate as <uuid>.crt/.key.
    mkdir -p "$dir/certs"
    cp "$work/tls/server.crt" "$dir/certs/${server_uuid[$name]}.crt"
    cp "$work/tls/server.key" "$dir/certs/${server_uuid[$name]}.key"
    {
        cat "$dir/site.sql"
        sed -e "s|@TLS_PORT@|${tls_port[$name]}|g" bench/config/tls.sql.in
    } >"$dir/site-tls.sql"
    "$kennel_bin" load --db "$dir/tls.sqlite" "$dir/site-tls.sql" >/dev/null
}
# The TLS scenarios' certificate (l-n), one for all three servers: a CA
# and a server certificate for localhost and 127.0.0.1, both ECDSA P-256
# (SEC1 keys), made afresh each run in bench/work/tls/.
make_certs() {
    local d=$work/tls
    mkdir -p "$d"
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$d/server.ext"
    {
        openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" &&
            openssl req -x509 -new -key "$d/ca.key" -sha256 -days 30 -subj "/CN=Kennel bench CA" \
                -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$d/ca.crt" &&
            openssl ecparam -name prime256v1 -genkey -noout -out "$d/server.key" &&
            openssl req -new -key "$d/server.key" -subj "/CN=localhost" -out "$d/server.csr" &&
            openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
                -CAcreateserial -days 30 -sha256 -extfile "$d/server.ext" -out "$d/server.crt" &&
            openssl verify -CAfile "$d/ca.crt" "$d/server.crt"
    } >"$d/openssl.log" 2>&1 || die "openssl could not make the bench certificates ($d/openssl.log)"
}
make_nginx() {
    local dir=$work/nginx
    mkdir -p "$dir/logs" "$dir/run" "$dir/tmp"
    make_static "$dir"
    sed -e "s|@PREFIX@|$dir|g" \
        -e "s|@PORT@|${http_port[nginx]}|g" \
        -e "s|@NOFILE@|$nofile|g" \
        -e "s|@WORKER_CONNECTIONS@|$((nofile - 64))|g" \
        -e "s|@BACKEND_PORT@|$backend_port|g" \
        bench/config/nginx.conf.in >"$dir/nginx.conf"
    # Its HTTPS server (l, n), included by nginx.conf; empty when no TLS
    # scenario runs.
    if wants_tls; then
        mkdir -p "$dir/certs"
        cp "$work/tls/server.crt" "$work/tls/server.key" "$dir/certs/"
        sed -e "s|@PREFIX@|$dir|g" -e "s|@TLS_PORT@|${tls_port[nginx]}|g" \
            bench/config/nginx-tls.conf.in >"$dir/tls.conf"
    else
        echo "# no TLS scenario in this run" >"$dir/tls.conf"
    fi
}
# The proxy back end (k): /proxy/1k.bin, the same bytes as /static/1k.bin.
make_backend() {
    local dir=$work/backend
    mkdir -p "$dir/logs" "$dir/run" "$dir/tmp" "$dir/proxy"
    head -c 1024 /dev/zero | tr '\0' k >"$dir/proxy/1k.bin"
    sed -e "s|@PREFIX@|$dir|g" \
        -e "s|@PORT@|$backend_port|g" \
        -e "s|@CPU@|$cpu_backend|g" \
        bench/config/backend.conf.in >"$dir/nginx.conf"
}
wants_tls && make_certs
wants_server kennel && make_mongrel2_style kennel
wants_server mongrel2 && make_mongrel2_style mongrel2
wants_server nginx && make_nginx
wants_scenario k && make_backend

# ---------------------------------------------------------------- servers
server_pid=""   # the process whose memory is measured (nginx: its worker)
server_main=""  # the process started (nginx: its master)
handler_pid=""

# Which variant start_server starts: 0 plain HTTP (bench.sqlite, the HTTP
# port), 1 the TLS one (tls.sqlite, the TLS port; l-n).
server_tls=0
# Kennel's RUST_LOG (o needs info: its reloads are counted in the log).
kennel_log=warn
# base_url SERVER: where the variant started is reached.
base_url() {
    if ((server_tls)); then
        echo "https://127.0.0.1:${tls_port[$1]}"
    else
        echo "http://127.0.0.1:${http_port[$1]}"
    fi
}

# http_code URL [max seconds]: the status code, or 000. An https URL must
# present a certificate the bench CA signed, for 127.0.0.1.
http_code() {
    local ca=()
    [[ $1 == https:* ]] && ca=(--cacert "$work/tls/ca.crt")
    curl -s -o /dev/null -w '%{http_code}' "${ca[@]}" --max-time "${2:-2}" "$1" 2>/dev/null || true
}

# wait_for URL CODE WHO: until URL answers CODE (bounded), or the server dies.
wait_for() {
    local url=$1 want=$2 who=$3 _ code
    for _ in $(seq "$startup_tenths"); do
        code=$(http_code "$url" 1)
        [[ $code == "$want" ]] && return 0
        kill -0 "$server_main" 2>/dev/null || {
            note "$who exited; the end of its log:"
            tail -n 15 "$work/$who/server.log" >&2 || true
            return 1
        }
        sleep 0.1
    done
    note "$who did not answer $url with $want in time (last: $code)"
    return 1
}

start_handler() {
    taskset -c "$cpu_server" "$handler_bin" --send-spec "$hello_send" --recv-spec "$hello_recv" \
        >>"$work/$1/handler.log" 2>&1 &
    handler_pid=$!
    started+=("$handler_pid")
}

# start_server NAME [nohandler]: starts it (and the bench handler) and waits
# until a static file and, for handler servers, /bench/hello answer. With
# server_tls=1, its TLS variant.
start_server() {
    local name=$1 dir=$work/$1 port=${http_port[$1]} db=bench.sqlite url
    if ((server_tls)); then
        port=${tls_port[$1]} db=tls.sqlite
    fi
    url=$(base_url "$name")
    # Whatever answers must be the server started here, not a leftover.
    if port_in_use "$port"; then
        note "port $port is still in use; not starting $name"
        return 1
    fi
    rm -f "$dir/run/"*.pid
    case $name in
        kennel)
            # Mongrel2's command line (server.daemonize is 0, so it stays in
            # the foreground). One tokio worker: the server has one core.
            env TOKIO_WORKER_THREADS=1 RUST_LOG="$kennel_log" taskset -c "$cpu_server" \
                "$kennel_bin" "$dir/$db" "${server_uuid[kennel]}" >>"$dir/server.log" 2>&1 &
            ;;
        mongrel2)
            taskset -c "$cpu_server" mongrel2 "$dir/$db" "${server_uuid[mongrel2]}" \
                >>"$dir/server.log" 2>&1 &
            ;;
        nginx)
            taskset -c "$cpu_server" "$nginx_bin" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
                >>"$dir/server.log" 2>&1 &
            ;;
    esac
    server_main=$!
    server_pid=$server_main
    started+=("$server_main")
    wait_for "$url/static/1k.bin" 200 "$name" || return 1
    if [[ $name == nginx ]]; then
        server_pid=$(pgrep -P "$server_main" | head -n 1)
        [[ -n $server_pid ]] || { note "nginx has no worker process"; return 1; }
        return 0
    fi
    [[ ${2:-} == nohandler ]] && return 0
    start_handler "$name"
    wait_for "$url/bench/hello" 200 "$name"
}

# The proxy back end (k): started once for the whole scenario, so every
# front end meets the same one.
backend_pid=""
start_backend() {
    local dir=$work/backend _ code
    if port_in_use "$backend_port"; then
        note "port $backend_port is still in use; not starting the proxy back end"
        return 1
    fi
    taskset -c "$cpu_backend" "$nginx_bin" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
        >>"$dir/server.log" 2>&1 &
    backend_pid=$!
    started+=("$backend_pid")
    for _ in $(seq "$startup_tenths"); do
        code=$(http_code "http://127.0.0.1:$backend_port/proxy/1k.bin" 1)
        [[ $code == 200 ]] && return 0
        kill -0 "$backend_pid" 2>/dev/null || break
        sleep 0.1
    done
    note "the proxy back end did not answer (last: ${code:-none}); bench/work/backend/"
    return 1
}
stop_backend() {
    [[ -n $backend_pid ]] || return 0
    stop_pid "$backend_pid"
    forget_pid "$backend_pid"
    backend_pid=""
}

stop_server() {
    if [[ -n $handler_pid ]]; then
        stop_pid "$handler_pid"
        forget_pid "$handler_pid"
        handler_pid=""
    fi
    if [[ -n $server_main ]]; then
        stop_pid "$server_main"
        forget_pid "$server_main"
        server_main=""
        server_pid=""
    fi
}

# ---------------------------------------------------------------- results
# raw.tsv: key, server, value (one line per measurement).
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$raw"; }
# notes.tsv: key, server, text (anomalies shown under the table).
remark() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$work/notes.tsv"; }
: >"$work/notes.tsv"

# parse_wrk FILE: "rps p50_us p99_us non2xx socket_errors", or nothing.
parse_wrk() {
    awk '
        function us(v,   n) {
            n = v + 0
            if (v ~ /us$/) return n
            if (v ~ /ms$/) return n * 1000
            if (v ~ /m$/) return n * 60000000
            if (v ~ /h$/) return n * 3600000000
            if (v ~ /s$/) return n * 1000000
            return n
        }
        /Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = us($2) }
        $1 == "99%" { p99 = us($2) }
        /Non-2xx or 3xx responses:/ { bad = $NF }
        /Socket errors:/ { gsub(",", ""); sock = $4 + $6 + $8 + $10 }
        END { if (rps != "") printf "%s %s %s %d %d\n", rps, p50, p99, bad, sock }
    ' "$1"
}

# load SERVER KEY PATH CONNS SECONDS REP [wrk args...]: one wrk run; records
# KEY.rps and, with --latency, KEY.p50 and KEY.p99 (microseconds).
load() {
    local server=$1 key=$2 path=$3 c=$4 secs=$5 rep=$6
    shift 6
    local out=$work/raw/$server-$key-$rep.txt
    local url
    url=$(base_url "$server")$path
    timeout $((secs + 60)) taskset -c "$cpu_load" wrk -t1 -c"$c" -d"${secs}s" --latency "$@" "$url" \
        >"$out" 2>&1 || true
    local parsed
    parsed=$(parse_wrk "$out")
    if [[ -z $parsed ]]; then
        remark "$key" "$server" "wrk gave no result (see bench/work/raw/$server-$key-$rep.txt)"
        return 0
    fi
    local rps p50 p99 bad sock
    read -r rps p50 p99 bad sock <<<"$parsed"
    record "$key.rps" "$server" "$rps"
    record "$key.p50" "$server" "$p50"
    record "$key.p99" "$server" "$p99"
    ((bad > 0)) && remark "$key" "$server" "run $rep: $bad non-2xx responses"
    ((sock > 0)) && remark "$key" "$server" "run $rep: $sock socket errors ($(grep -m1 'Socket errors' "$out" | sed 's/^ *//'))"
    return 0
}

# rss_kib PID: resident set size in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- scenarios
# a-e for one server, one repetition (the server is up).
scenarios_a_to_e() {
    local s=$1 rep=$2
    if [[ $s != nginx ]]; then
        wants_scenario a && load "$s" a /bench/hello "$conns" "$seconds" "$rep"
        wants_scenario b && load "$s" b /bench/hello "$conns" "$seconds" "$rep" -H 'Connection: close'
    fi
    wants_scenario c && load "$s" c /static/1k.bin "$conns" "$seconds" "$rep"
    wants_scenario d && load "$s" d /static/1m.bin "$conns" "$seconds" "$rep"
    if wants_scenario e; then
        [[ $s != nginx ]] && load "$s" e.hello /bench/hello 1 "$latency_seconds" "$rep"
        load "$s" e.static /static/1k.bin 1 "$latency_seconds" "$rep"
    fi
    return 0
}

# idle SERVER KEY COUNT REP [SOURCES]: RSS growth per idle connection (f,
# fh, j). What each connection does before it idles is idle_what: static
# (f: BENCH_IDLE_REQUEST), handler (fh: BENCH_IDLE_HANDLER_REQUEST) or
# websocket (j: an upgrade through the handler and one echoed message).
# With idle_load=1, also runs scenario a's load (key fa) while the idle
# connections are held, for handler servers.
idle_load=0
idle_what=static
idle() {
    local s=$1 key=$2 count=$3 rep=$4 sources=${5:-}
    local out=$work/raw/$s-$key-$rep.txt
    local args=(--addr "127.0.0.1:${http_port[$s]}" --count "$count" --hold-secs 3600)
    local want=200
    [[ -n $sources ]] && args+=(--sources "$sources")
    case $idle_what in
        static) [[ -n $idle_request ]] && args+=(--request "$idle_request") ;;
        handler) args+=(--request "$idle_handler_request") ;;
        websocket) args+=(--websocket /bench/ws) want=101 ;;
    esac
    local before after tool opened failed _
    before=$(rss_kib "$server_pid")
    # The tool holds its connections for --hold-secs or until SIGTERM,
    # which it gets once the server's memory has been read.
    taskset -c "$cpu_load" "$idle_tool" "${args[@]}" </dev/null >"$out" 2>&1 &
    tool=$!
    started+=("$tool")
    for _ in $(seq $((idle_open_timeout_s * 10))); do
        grep -q '^opened' "$out" && break
        kill -0 "$tool" 2>/dev/null || break
        sleep 0.1
    done
    # "opened N failed M", after "first_error ..." and "statuses S:N ...".
    read -r opened failed <<<"$(awk '$1 == "opened" { print $2, $4; exit }' "$out")"
    if [[ -n $opened ]] && ((opened > 0)); then
        # Let the server finish what the last connections started.
        sleep 1
        after=$(rss_kib "$server_pid")
        record "$key.kib" "$s" "$(awk -v a="$after" -v b="$before" -v n="$opened" \
            'BEGIN { printf "%.2f", (a - b) / n }')"
        ((${failed:-0} > 0)) &&
            remark "$key" "$s" "run $rep: $failed of $count connections failed ($(grep -m1 '^first_error' "$out"))"
        grep -q '^statuses' "$out" && ! grep -q "^statuses $want:[0-9]*\$" "$out" &&
            remark "$key" "$s" "run $rep: not every response was $want ($(grep -m1 '^statuses' "$out"))"
        if ((idle_load)) && [[ $s != nginx ]]; then
            load "$s" fa /bench/hello "$conns" "$seconds" "$rep"
        fi
    else
        remark "$key" "$s" "run $rep: idle-conns opened nothing: $(tail -n 1 "$out")"
    fi
    stop_pid "$tool"
    forget_pid "$tool"
    return 0
}

# broadcast SERVER REP: time until 1,000 listeners have one reply (g).
broadcast() {
    local s=$1 rep=$2 out=$work/raw/$1-g-$2.txt
    timeout 300 taskset -c "$cpu_load" "$broadcast_tool" --addr "127.0.0.1:${http_port[$s]}" \
        --count "$broadcast_conns" --path /bench/listen \
        --send-spec "$listen_send" --recv-spec "$listen_recv" \
        --batch "$broadcast_batch" --rounds 3 >"$out" 2>&1 || true
    local values
    values=$(awk '$1 == "elapsed_us" { print $2 }' "$out")
    if [[ -z $values ]]; then
        remark g "$s" "run $rep: broadcast gave no result: $(tail -n 1 "$out")"
        return 0
    fi
    local v
    for v in $values; do
        record g.ms "$s" "$(awk -v u="$v" 'BEGIN { printf "%.3f", u / 1000 }')"
    done
}

# write_floor REP: the same clients written to by a bare thread on the
# server's core, no server (g's floor).
write_floor() {
    local rep=$1 out=$work/raw/floor-g-$1.txt
    timeout 300 taskset -c "$cpu_load" "$floor_tool" --count "$broadcast_conns" \
        --writer-cpu "$cpu_server" --rounds 3 >"$out" 2>&1 || true
    local v values
    values=$(awk '$1 == "elapsed_us" { print $2 }' "$out")
    if [[ -z $values ]]; then
        remark g floor "run $rep: write-floor gave no result: $(tail -n 1 "$out")"
        return 0
    fi
    for v in $values; do
        record g.floor.ms floor "$(awk -v u="$v" 'BEGIN { printf "%.3f", u / 1000 }')"
    done
}

# ws_echo SERVER REP: WebSocket echo through the handler (i): messages per
# second and latency percentiles (microseconds) from ws-echo.
ws_echo() {
    local s=$1 rep=$2 out=$work/raw/$1-i-$2.txt
    timeout $((seconds + 120)) taskset -c "$cpu_load" "$ws_tool" --addr "127.0.0.1:${http_port[$s]}" \
        --path /bench/ws --conns "$conns" --secs "$seconds" --payload-bytes "$ws_payload" \
        >"$out" 2>&1 || true
    local mps p50 p99
    read -r mps p50 p99 <<<"$(awk '
        $1 == "messages_per_sec" { m = $2 } $1 == "p50_us" { a = $2 } $1 == "p99_us" { b = $2 }
        END { if (m != "") print m, a, b }' "$out")"
    if [[ -z $mps ]]; then
        remark i "$s" "run $rep: ws-echo gave no result: $(tail -n 1 "$out")"
        return 0
    fi
    record i.mps "$s" "$mps"
    record i.p50 "$s" "$p50"
    record i.p99 "$s" "$p99"
}

# proxy_check SERVER REP: the proxied 1 KiB file arrives whole (k), before
# it is loaded; a remark if not.
proxy_check() {
    local s=$1 rep=$2 got=$work/raw/$1-k-$2.body code
    code=$(curl -s -o "$got" -w '%{http_code}' --max-time 5 \
        "http://127.0.0.1:${http_port[$s]}/proxy/1k.bin" 2>/dev/null || true)
    if [[ $code != 200 ]] || ! cmp -s "$got" "$work/backend/proxy/1k.bin"; then
        remark k "$s" "run $rep: GET /proxy/1k.bin gave status ${code:-none} and $(wc -c <"$got" 2>/dev/null || echo 0) bytes, not the back end's 1024"
    fi
}

# no_handler SERVER: time to an answer on a route whose handler never runs (h).
no_handler() {
    local s=$1 url="http://127.0.0.1:${http_port[$1]}/bench/absent" i line code secs
    for i in $(seq "$nohandler_tries"); do
        line=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time "$nohandler_max_s" \
            "$url" 2>/dev/null || true)
        read -r code secs <<<"$line"
        if [[ ${code:-000} == 000 ]]; then
            record h.none "$s" "no answer in $nohandler_max_s s"
        else
            record h.ms "$s" "$(awk -v t="$secs" 'BEGIN { printf "%.1f", t * 1000 }')"
            [[ $code == 503 ]] || remark h "$s" "try $i: status $code, not 503"
        fi
    done
}

# tls_check KEY SERVER: what an OpenSSL client (the library wrk uses)
# negotiates with the TLS variant, and whether the certificate verifies
# against the bench CA for the name localhost (l-n); a note either way.
tls_check() {
    local key=$1 s=$2 out line verify
    out=$(timeout 10 openssl s_client -connect "127.0.0.1:${tls_port[$s]}" -servername localhost \
        -verify_hostname localhost -CAfile "$work/tls/ca.crt" </dev/null 2>&1 || true)
    line=$(grep -m1 -E '^(New|Reused), ' <<<"$out" | sed 's/^New, //; s/, Cipher is / /' || true)
    verify=$(grep -m1 'Verify return code' <<<"$out" | sed 's/^ *//' || true)
    if [[ $verify == "Verify return code: 0 (ok)" ]]; then
        remark tls "$s" "an OpenSSL client (as wrk) gets ${line:-?}; the certificate verifies against the bench CA"
    else
        remark "$key" "$s" "openssl s_client: ${verify:-no handshake} (${line:-no session})"
    fi
}

# cpu_ticks PID: the CPU time (user + system, all threads) of a process,
# in clock ticks.
clock_ticks=$(getconf CLK_TCK)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0; }

# handshakes SERVER KIND REP: new TLS connections per second (n), KIND full
# or resumed, with tls-connect; records the rate, the share resumed, and
# how busy the server's and the load generator's cores were.
handshakes() {
    local s=$1 kind=$2 rep=$3 out=$work/raw/$1-n.$2-$3.txt
    local args=(--addr "127.0.0.1:${tls_port[$s]}" --pin "$work/tls/server.crt"
        --conns "$conns" --secs "$seconds")
    [[ $kind == resumed ]] && args+=(--resume)
    local c0 c1 t0 t1
    c0=$(cpu_ticks "$server_pid")
    t0=$(date +%s%N)
    timeout $((seconds + 60)) taskset -c "$cpu_load" "$tls_tool" "${args[@]}" >"$out" 2>&1 || true
    t1=$(date +%s%N)
    c1=$(cpu_ticks "$server_pid")
    local cps pct ccpu failed error
    read -r cps pct ccpu failed <<<"$(awk '
        $1 == "connections_per_sec" { c = $2 } $1 == "resumed_pct" { p = $2 }
        $1 == "client_cpu_pct" { u = $2 } $1 == "failed" { f = $2 }
        END { if (c != "") print c, p, u, f }' "$out")"
    if [[ -z $cps ]]; then
        remark n "$s" "run $rep, $kind: tls-connect gave no result: $(tail -n 1 "$out")"
        return 0
    fi
    record "n.$kind.cps" "$s" "$cps"
    record "n.$kind.ccpu" "$s" "$ccpu"
    record "n.$kind.scpu" "$s" "$(awk -v c=$((c1 - c0)) -v hz="$clock_ticks" -v ns=$((t1 - t0)) \
        'BEGIN { printf "%.1f", 100 * c / hz / (ns / 1e9) }')"
    if [[ $kind == resumed ]]; then
        record n.resumed.pct "$s" "$pct"
    elif [[ $pct != 0.00 ]]; then
        remark n "$s" "run $rep: $pct % of the full handshakes were resumed"
    fi
    if ((failed > 0)); then
        error=$(awk '$1 == "first_error" { $1 = ""; print substr($0, 2); exit }' "$out")
        remark n "$s" "run $rep, $kind: $failed connections failed (first: $error)"
    fi
    return 0
}

# handshake_check SERVER: one connection at a time for a moment, with
# tls-connect's full check (the chain and the name against the bench CA,
# every signature) and resumption on: it must work, and resume (n).
handshake_check() {
    local s=$1 out=$work/raw/$1-n.check.txt resumed failed
    timeout 30 taskset -c "$cpu_load" "$tls_tool" --addr "127.0.0.1:${tls_port[$s]}" \
        --ca "$work/tls/ca.crt" --resume --conns 1 --secs 0.3 >"$out" 2>&1 || true
    read -r resumed failed <<<"$(awk '$1 == "resumed" { r = $2 } $1 == "failed" { f = $2 }
        END { print r + 0, f + 0 }' "$out")"
    if ! grep -q '^connections [1-9]' "$out" || ((failed > 0)); then
        remark n "$s" "the verifying check failed: $(grep -m1 -E '^first_error|^Error' "$out" || tail -n 1 "$out")"
    elif ((resumed == 0)); then
        remark n "$s" "the verifying check resumed no session"
    fi
}

# o_load REP WHAT: scenario o's load on Kennel, wrk on /bench/hello and on
# /static/1k.bin at once, conns/2 connections each, while config_changes
# runs: with WHAT=reload each change is followed by a SIGHUP, with
# WHAT=steady not. Records o.rps (or o.steady.rps), the socket errors, the
# non-2xx responses and the reloads Kennel logged; leaves the total in
# o_total.
o_total=""
o_load() {
    local rep=$1 what=$2 half=$((conns / 2)) url key=o
    ((half > 0)) || half=1
    url=$(base_url kennel)
    [[ $what == steady ]] && key=o.steady
    local log_file=$work/kennel/server.log before after
    before=$(grep -c 'reloaded the config' "$log_file" || true)
    local pids=() route path
    for route in hello static; do
        path=/bench/hello
        [[ $route == static ]] && path=/static/1k.bin
        timeout $((seconds + 60)) taskset -c "$cpu_load" wrk -t1 -c"$half" -d"${seconds}s" \
            --latency "$url$path" >"$work/raw/kennel-$key.$route-$rep.txt" 2>&1 &
        pids+=($!)
        started+=($!)
    done
    config_changes "$rep" "$what" "$before"
    local pid
    for pid in "${pids[@]}"; do
        wait "$pid" || true
        forget_pid "$pid"
    done
    local total=0 bad=0 sock=0 parsed rps p50 p99 b k
    o_total=""
    for route in hello static; do
        parsed=$(parse_wrk "$work/raw/kennel-$key.$route-$rep.txt")
        if [[ -z $parsed ]]; then
            remark o kennel "run $rep, $what: wrk on $route gave no result (see bench/work/raw/kennel-$key.$route-$rep.txt)"
            return 0
        fi
        read -r rps p50 p99 b k <<<"$parsed"
        total=$(awk -v t="$total" -v r="$rps" 'BEGIN { printf "%.2f", t + r }')
        bad=$((bad + b)) sock=$((sock + k))
    done
    o_total=$total
    record "$key.rps" kennel "$total"
    after=$(grep -c 'reloaded the config' "$log_file" || true)
    if [[ $what == reload ]]; then
        record o.sockerr kennel "$sock"
        record o.non2xx kennel "$bad"
        record o.reloads kennel $((after - before))
    elif ((after != before)); then
        remark o kennel "run $rep: $((after - before)) reloads logged in the run without reloads"
    fi
    ((bad > 0)) && remark o kennel "run $rep, $what: $bad non-2xx responses"
    ((sock > 0)) && remark o kennel "run $rep, $what: $sock socket errors"
    return 0
}

# config_changes REP WHAT BEFORE: o's $reloads config changes at even
# intervals over the load run, each a route row added or removed with
# sqlite3, and with WHAT=reload a SIGHUP after each. Both runs make the
# same changes, so the work of making them (a sqlite3 process each, on the
# load generator's core) is in both, and only the reloads differ. Before
# each change the reload before it must have been logged (BEFORE: the count
# of "reloaded the config" lines at the start; at most 2 s): the database
# is not written while Kennel reads it, and no two SIGHUPs arrive as one.
reload_probe=/bench/reload-probe
config_changes() {
    local rep=$1 what=$2 before=$3 db=$work/kennel/bench.sqlite log_file=$work/kennel/server.log
    local start_us step_us i at now d sql _ want code
    start_us=${EPOCHREALTIME/./}
    step_us=$((seconds * 1000000 / (reloads + 1)))
    for i in $(seq "$reloads"); do
        at=$((start_us + i * step_us))
        now=${EPOCHREALTIME/./}
        if ((at > now)); then
            d=$((at - now))
            sleep "$((d / 1000000)).$(printf '%06d' $((d % 1000000)))"
        fi
        if [[ $what == reload ]]; then
            for _ in $(seq 100); do
                (($(grep -c 'reloaded the config' "$log_file" || true) >= before + i - 1)) && break
                sleep 0.02
            done
        fi
        if ((i % 2)); then
            sql="INSERT INTO route (path, host_id, target_id, target_type) VALUES ('$reload_probe', 1, 1, 'handler');"
        else
            sql="DELETE FROM route WHERE path = '$reload_probe';"
        fi
        taskset -c "$cpu_load" sqlite3 "$db" "$sql" ||
            remark o kennel "run $rep: change $i: sqlite3 could not change the config"
        [[ $what == reload ]] || continue
        kill -HUP "$server_main" 2>/dev/null || {
            remark o kennel "run $rep: reload $i: Kennel is gone"
            return 0
        }
        # The probe route is there after odd reloads, gone after even ones.
        if ((i == 1 || i == reloads)); then
            for _ in $(seq 100); do
                (($(grep -c 'reloaded the config' "$log_file" || true) >= before + i)) && break
                sleep 0.02
            done
            want=404
            ((i % 2)) && want=200
            code=$(http_code "$(base_url kennel)$reload_probe")
            [[ $code == "$want" ]] ||
                remark o kennel "run $rep: after reload $i, $reload_probe answered $code, not $want"
        fi
    done
    if grep -q 'reload refused' "$log_file"; then
        remark o kennel "a reload was refused: $(grep -m1 'reload refused' "$log_file")"
    fi
    # Leave the config as it was.
    taskset -c "$cpu_load" sqlite3 "$db" "DELETE FROM route WHERE path = '$reload_probe';" || true
}

# per_handler_server KEY TOOL WHAT COMMAND: scenario KEY on Kennel and
# Mongrel2 (nginx has no handlers): every repetition starts each afresh,
# servers interleaved, with its handler, and runs COMMAND SERVER REP. When
# TOOL is not there, the scenario is skipped with a note.
per_handler_server() {
    local key=$1 tool=$2 what=$3 command=$4 rep s
    if [[ ! -x $tool ]]; then
        log "$key: skipped (tool missing: $tool)"
        remark "$key" - "skipped (tool missing)"
        return 0
    fi
    for rep in $(seq "$reps"); do
        for s in $servers; do
            [[ $s == nginx ]] && continue
            log "run $rep/$reps: $s, scenario $key ($what)"
            if start_server "$s"; then
                "$command" "$s" "$rep"
            fi
            stop_server
        done
    done
}

# ---------------------------------------------------------------- the run
started_at=$(date +%s)
log "scenarios: $scenarios; servers: $servers; $reps repetition(s), ${seconds}s load, ${latency_seconds}s unloaded"

# a-e: every repetition starts each server afresh, servers interleaved, so
# drift on the machine hits all three alike.
if wants_scenario a || wants_scenario b || wants_scenario c || wants_scenario d || wants_scenario e; then
    for rep in $(seq "$reps"); do
        for s in $servers; do
            log "run $rep/$reps: $s, scenarios a-e"
            if start_server "$s"; then
                scenarios_a_to_e "$s" "$rep"
            else
                remark start "$s" "run $rep: did not start (bench/work/$s/server.log)"
            fi
            stop_server
        done
    done
fi

# f: a fresh server per repetition, so the baseline is a server at rest.
if wants_scenario f; then
    if [[ ! -x $idle_tool ]]; then
        log "f: skipped (tool missing: $idle_tool)"
        remark f - "skipped (tool missing)"
    else
        for rep in $(seq "$reps"); do
            for s in $servers; do
                log "run $rep/$reps: $s, scenario f ($idle_conns idle connections, then a's load beside them)"
                if start_server "$s"; then
                    idle_load=1 idle "$s" f "$idle_conns" "$rep"
                fi
                stop_server
            done
        done
        if wants_server kennel; then
            # One loopback source address gives about 28,000 ports; each
            # 25,000 connections get their own (127.0.0.2, 127.0.0.3, ...).
            big_key=f100k big_count=$idle_conns_big
            if ((nofile < big_fds_needed)); then
                log "f: Kennel at $idle_conns_big not possible (open-file limit $nofile < $big_fds_needed); running at $big_max"
                remark f100k kennel "not measured: the open-file hard limit is $nofile < $big_fds_needed (raise it to measure); row fmax has the most this machine allows"
                big_key=fmax big_count=$big_max
            fi
            if ((big_count > idle_conns)); then
                nsrc=$(((big_count + 24999) / 25000))
                sources=$(seq -s, -f '127.0.0.%g' 2 $((nsrc + 1)))
                for rep in $(seq "$reps"); do
                    log "run $rep/$reps: kennel, scenario f ($big_count idle connections from $sources)"
                    start_server kennel && idle kennel "$big_key" "$big_count" "$rep" "$sources"
                    stop_server
                done
            fi
        fi
    fi
fi

# fh: f after a handler request (GET /bench/hello), Kennel and Mongrel2.
idle_after_handler() { idle_what=handler idle "$1" fh "$idle_conns" "$2"; }
if wants_scenario fh; then
    per_handler_server fh "$idle_tool" "$idle_conns idle connections after a handler request" \
        idle_after_handler
fi

# g: Kennel and Mongrel2 (nginx has no handlers).
if wants_scenario g; then
    if [[ ! -x $broadcast_tool ]]; then
        log "g: skipped (tool missing: $broadcast_tool)"
        remark g - "skipped (tool missing)"
    else
        for rep in $(seq "$reps"); do
            for s in $servers; do
                [[ $s == nginx ]] && continue
                log "run $rep/$reps: $s, scenario g ($broadcast_conns listeners)"
                start_server "$s" && broadcast "$s" "$rep"
                stop_server
            done
            if [[ -x $floor_tool ]]; then
                log "run $rep/$reps: scenario g's floor (write-floor, no server)"
                write_floor "$rep"
            fi
        done
    fi
fi

# h: Kennel and Mongrel2, no bench handler needed.
if wants_scenario h; then
    for s in $servers; do
        [[ $s == nginx ]] && continue
        log "$s, scenario h ($nohandler_tries requests, no handler)"
        start_server "$s" nohandler && no_handler "$s"
        stop_server
    done
fi

# i: WebSocket echo through the bench handler, Kennel and Mongrel2.
if wants_scenario i; then
    per_handler_server i "$ws_tool" "WebSocket echo, $conns connections" ws_echo
fi

# j: idle WebSocket connections, upgraded through the handler, one message
# echoed on each; Kennel and Mongrel2.
idle_websockets() { idle_what=websocket idle "$1" j "$idle_conns" "$2"; }
if wants_scenario j; then
    per_handler_server j "$idle_tool" "$idle_conns idle WebSocket connections" idle_websockets
fi

# k: the proxy route to one back end, all three; the back end runs for the
# whole scenario, each front end is started afresh per repetition.
if wants_scenario k; then
    log "scenario k: the proxy back end on CPU $cpu_backend, port $backend_port"
    if start_backend; then
        for rep in $(seq "$reps"); do
            for s in $servers; do
                log "run $rep/$reps: $s, scenario k (proxy, $conns connections)"
                if start_server "$s" nohandler; then
                    proxy_check "$s" "$rep"
                    load "$s" k /proxy/1k.bin "$conns" "$seconds" "$rep"
                fi
                stop_server
            done
        done
    else
        remark k - "skipped: the proxy back end did not start (bench/work/backend/)"
    fi
    stop_backend
fi

# per_tls_server WHAT SKIP HOW COMMAND: every repetition starts the TLS
# variant of each server not in SKIP afresh (HOW: nohandler, or empty to
# start the bench handler too), servers interleaved as for a-e, and runs
# COMMAND SERVER REP.
per_tls_server() {
    local what=$1 skip=$2 how=$3 command=$4 rep s
    server_tls=1
    for rep in $(seq "$reps"); do
        for s in $servers; do
            [[ " $skip " == *" $s "* ]] && continue
            log "run $rep/$reps: $s, $what"
            if start_server "$s" ${how:+"$how"}; then
                "$command" "$s" "$rep"
            else
                remark start "$s" "run $rep: its TLS variant did not start (bench/work/$s/server.log)"
            fi
            stop_server
        done
    done
    server_tls=0
}

# l, m: over TLS, keep-alive; one start of each server serves both: l
# (static) on all three, m (handler) on Kennel and Mongrel2.
tls_keepalive() {
    local s=$1 rep=$2
    ((rep == 1)) && tls_check l "$s"
    wants_scenario l && load "$s" l /static/1k.bin "$conns" "$seconds" "$rep"
    [[ $s != nginx ]] && wants_scenario m && load "$s" m /bench/hello "$conns" "$seconds" "$rep"
    return 0
}
if wants_scenario l || wants_scenario m; then
    if wants_scenario m; then
        # The handler for m; without l, nginx has nothing to do.
        skip=""
        wants_scenario l || skip=nginx
        per_tls_server "scenarios l-m (TLS, $conns connections)" "$skip" "" tls_keepalive
    else
        per_tls_server "scenario l (TLS, $conns connections)" "" nohandler tls_keepalive
    fi
fi

# n: new TLS connections per second, full then resumed handshakes, Kennel
# and nginx (Mongrel2 is not a target here).
tls_handshakes() {
    local s=$1 rep=$2
    if ((rep == 1)); then
        tls_check n "$s"
        handshake_check "$s"
    fi
    handshakes "$s" full "$rep"
    handshakes "$s" resumed "$rep"
}
if wants_scenario n; then
    if [[ ! -x $tls_tool ]]; then
        log "n: skipped (tool missing: $tls_tool)"
        remark n - "skipped (tool missing)"
    else
        per_tls_server "scenario n (new TLS connections, $conns at a time, full then resumed)" \
            mongrel2 nohandler tls_handshakes
    fi
fi

# o: reload under load, Kennel alone (the plain variant, with its handler).
# Each repetition runs the load with reloads and without, on one Kennel,
# in alternating order so neither always runs on the fresher server.
if wants_scenario o && wants_server kennel; then
    kennel_log=info
    for rep in $(seq "$reps"); do
        log "run $rep/$reps: kennel, scenario o (two loads of $((conns / 2)) connections, with $reloads reloads and without)"
        if start_server kennel; then
            order="reload steady"
            ((rep % 2)) || order="steady reload"
            declare -A o_rps=()
            for what in $order; do
                o_load "$rep" "$what"
                o_rps[$what]=$o_total
            done
            if [[ -n ${o_rps[reload]} && -n ${o_rps[steady]} ]]; then
                record o.ratio kennel "$(awk -v r="${o_rps[reload]}" -v s="${o_rps[steady]}" \
                    'BEGIN { if (s > 0) printf "%.3f", r / s }')"
            fi
        else
            remark start kennel "run $rep: did not start for o (bench/work/kennel/server.log)"
        fi
        stop_server
    done
    kennel_log=warn
fi

# The comparison is only fair if all three did the same work: say so when
# a server wrote no access log.
for s in $servers; do
    [[ -s $work/$s/logs/access.log ]] ||
        remark access-log "$s" "no access log lines in bench/work/$s/logs/access.log"
done

elapsed=$(($(date +%s) - started_at))
log "measurements done in ${elapsed}s; building the table"

# ---------------------------------------------------------------- the table
# stats KEY SERVER: "median min max n" of the numeric values, or nothing.
stats() {
    awk -F'\t' -v k="$1" -v s="$2" '$1 == k && $2 == s { print $3 }' "$raw" | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) exit
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%s %s %s %d\n", m, v[1], v[NR], NR
        }'
}
# fmt VALUE DECIMALS
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { printf "%.*f", d, v }'; }
# cell KEY SERVER DECIMALS: "median (min–max)", or a note, or "–".
cell() {
    local st m lo hi n
    st=$(stats "$1" "$2")
    if [[ -z $st ]]; then
        local text
        text=$(awk -F'\t' -v k="$1" -v s="$2" '$1 == k && $2 == s { t = $3 } END { print t }' "$raw")
        [[ $1 == h.ms && -z $text ]] &&
            text=$(awk -F'\t' -v s="$2" '$1 == "h.none" && $2 == s { t = $3 } END { print t }' "$raw")
        echo "${text:-–}"
        return
    fi
    read -r m lo hi n <<<"$st"
    if ((n > 1)); then
        echo "$(fmt "$m" "$3") ($(fmt "$lo" "$3")–$(fmt "$hi" "$3"))"
    else
        fmt "$m" "$3"
    fi
}
median() { local st; st=$(stats "$1" "$2"); [[ -n $st ]] && echo "${st%% *}"; }
ratio() {
    local a b
    a=$(median "$1" kennel) || true
    b=$(median "$1" "$2") || true
    if [[ -z $a || -z $b ]] || awk -v b="$b" 'BEGIN { exit !(b == 0) }'; then
        echo "–"
    else
        awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'
    fi
}
# target KEY KM KN: "text|holds" from bench/targets.tsv.
target() {
    local key=$1 km=$2 kn=$3 line check thr text k
    line=$(awk -F'\t' -v k="$key" '$1 == k { print; exit }' bench/targets.tsv)
    [[ -z $line ]] && { echo "|"; return; }
    IFS=$'\t' read -r _ check thr text <<<"$line"
    thr=${thr//@WAIT+5@/$((connect_wait_ms + 5))}
    thr=${thr//@WAIT+100@/$((connect_wait_ms + 100))}
    thr=${thr//@RELOADS@/$reloads}
    text=${text//@WAIT@/$connect_wait_ms}
    text=${text//@RELOADS@/$reloads}
    k=$(median "$key" kennel) || true
    local value
    case $check in
        km_*) value=$km ;;
        kn_*) value=$kn ;;
        k_*) value=${k:-–} ;;
        kworst_*)
            # Kennel's worst value over the repetitions: the largest for
            # _max, the smallest for _min.
            local st lo hi
            st=$(stats "$key" kennel) || true
            value=–
            if [[ -n $st ]]; then
                read -r _ lo hi _ <<<"$st"
                case $check in *_max) value=$hi ;; *) value=$lo ;; esac
            fi
            ;;
        ka_*)
            # Kennel's median here over its own median of scenario a.
            local a
            a=$(median a.rps kennel) || true
            value=–
            [[ -n $k && -n $a ]] && value=$(awk -v k="$k" -v a="$a" 'BEGIN { printf "%.2f", k / a }')
            ;;
    esac
    if [[ -z $value || $value == "–" ]]; then
        echo "$text|–"
        return
    fi
    local op
    case $check in *_min) op=">=" ;; *_max) op="<=" ;; esac
    if awk -v v="$value" -v t="$thr" -v op="$op" 'BEGIN { exit !(op == ">=" ? v >= t : v <= t) }'; then
        echo "$text|yes"
    else
        echo "$text|**no**"
    fi
}

# key|label|unit|decimals
rows=(
    "a.rps|a. handler hello, keep-alive, $conns conns|req/s ↑|0"
    "a.p50|a. … latency p50 under load|µs ↓|0"
    "a.p99|a. … latency p99 under load|µs ↓|0"
    "b.rps|b. handler hello, new connection per request|req/s ↑|0"
    "c.rps|c. static 1 KiB, keep-alive, $conns conns|req/s ↑|0"
    "c.p50|c. … latency p50 under load|µs ↓|0"
    "c.p99|c. … latency p99 under load|µs ↓|0"
    "d.rps|d. static 1 MiB, keep-alive, $conns conns|req/s (= MiB/s) ↑|0"
    "e.hello.p50|e. round trip, handler, 1 conn, p50|µs ↓|0"
    "e.hello.p99|e. round trip, handler, 1 conn, p99|µs ↓|0"
    "e.static.p50|e. round trip, static 1 KiB, 1 conn, p50|µs ↓|0"
    "e.static.p99|e. round trip, static 1 KiB, 1 conn, p99|µs ↓|0"
    "f.kib|f. RSS per idle keep-alive conn, $idle_conns conns (after a static request)|KiB ↓|2"
    "fa.rps|f. a's load with those $idle_conns idle conns open|req/s ↑|0"
    "fh.kib|fh. RSS per idle keep-alive conn, $idle_conns conns (after a handler request)|KiB ↓|2"
    "f100k.kib|f. RSS per idle conn, Kennel, $idle_conns_big conns|KiB ↓|2"
)
((nofile < big_fds_needed)) &&
    rows+=("fmax.kib|f. RSS per idle conn, Kennel, $big_max conns (this machine's open-file limit)|KiB ↓|2")
rows+=(
    "g.ms|g. broadcast to $broadcast_conns conns (batches of $broadcast_batch)|ms ↓|2"
    "h.ms|h. no handler: time to an answer (Kennel wait $connect_wait_ms ms)|ms ↓|0"
    "i.mps|i. WebSocket echo through the handler, $conns conns|msg/s ↑|0"
    "i.p50|i. … latency p50 under load|µs ↓|0"
    "i.p99|i. … latency p99 under load|µs ↓|0"
    "j.kib|j. RSS per idle WebSocket conn, $idle_conns conns (one message echoed)|KiB ↓|2"
    "k.rps|k. proxy, 1 KiB from one back end, keep-alive, $conns conns|req/s ↑|0"
    "k.p50|k. … latency p50 under load|µs ↓|0"
    "k.p99|k. … latency p99 under load|µs ↓|0"
    "l.rps|l. HTTPS static 1 KiB, keep-alive, $conns conns|req/s ↑|0"
    "l.p50|l. … latency p50 under load|µs ↓|0"
    "l.p99|l. … latency p99 under load|µs ↓|0"
    "m.rps|m. HTTPS handler hello, keep-alive, $conns conns|req/s ↑|0"
    "m.p50|m. … latency p50 under load|µs ↓|0"
    "m.p99|m. … latency p99 under load|µs ↓|0"
    "n.full.cps|n. new TLS connections, full handshake + GET 1 KiB, $conns at a time|conn/s ↑|0"
    "n.full.scpu|n. … server's core busy|% ↓|0"
    "n.full.ccpu|n. … load generator's core busy|%|0"
    "n.resumed.cps|n. new TLS connections, resumed handshake + GET 1 KiB, $conns at a time|conn/s ↑|0"
    "n.resumed.pct|n. … handshakes resumed|% ↑|2"
    "n.resumed.scpu|n. … server's core busy|% ↓|0"
    "n.resumed.ccpu|n. … load generator's core busy|%|0"
    "o.ratio|o. reload under load: throughput with $reloads reloads / without|× ↑|2"
    "o.rps|o. … /bench/hello + /static/1k.bin, $((conns / 2)) conns each, with the reloads|req/s ↑|0"
    "o.steady.rps|o. … the same load, no reload|req/s ↑|0"
    "o.sockerr|o. … socket errors during the reloads|count ↓|0"
    "o.non2xx|o. … non-2xx responses during the reloads|count ↓|0"
    "o.reloads|o. … \"reloaded the config\" lines in Kennel's log|count|0"
)

render() {
    local git_rev
    git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    echo "# Kennel benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- Kennel $git_rev (release), Mongrel2 $(dpkg-query -W -f='${Version}' mongrel2-core 2>/dev/null || echo '?'), nginx $("$nginx_bin" -v 2>&1 | sed 's|.*/||'), wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?')"
    echo "- $(uname -sr), $ncpu CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); load generator on CPU $cpu_load, server and handler on CPU $cpu_server"
    echo "- $reps repetition(s): ${seconds}s per load run (a–d, i, k–o), ${latency_seconds}s per unloaded run (e); cells are median (min–max); K/M and K/N are ratios of medians from this run"
    wants_scenario k && echo "- proxy back end (k): one nginx on CPU $cpu_backend, the same for all three"
    wants_tls && echo "- TLS (l–n): one ECDSA P-256 certificate (bench CA, localhost and 127.0.0.1) for all three; each server's own protocol and cipher defaults (Notes, \"tls\")"
    echo "- ↑ higher is better, ↓ lower is better; \"–\" not measured"
    echo
    echo "| scenario | unit | Kennel | Mongrel2 | nginx | K/M | K/N | target | holds |"
    echo "|---|---|---|---|---|---|---|---|---|"
    local row key label unit dec km kn t
    for row in "${rows[@]}"; do
        IFS='|' read -r key label unit dec <<<"$row"
        km=$(ratio "$key" mongrel2)
        kn=$(ratio "$key" nginx)
        t=$(target "$key" "$km" "$kn")
        echo "| $label | $unit | $(cell "$key" kennel "$dec") | $(cell "$key" mongrel2 "$dec") | $(cell "$key" nginx "$dec") | $km | $kn | ${t%%|*} | ${t##*|} |"
    done
    local over
    over=$(median h.ms kennel) || true
    if [[ -n $over ]]; then
        echo
        echo "Kennel's 503 came $(awk -v m="$over" -v w="$connect_wait_ms" 'BEGIN { printf "%.0f", m - w }') ms after its $connect_wait_ms ms connect wait (median)."
    fi
    local floor half
    floor=$(median g.floor.ms floor) || true
    if [[ -n $floor ]]; then
        half=$(median g.ms mongrel2) || true
        echo
        echo -n "g's floor (bench/TOOLS.md, write-floor: the same $broadcast_conns clients, one write each from a bare thread on the server's core, no server): $(fmt "$floor" 2) ms (median)"
        if [[ -n $half ]]; then
            echo -n "; half of Mongrel2's time is $(awk -v m="$half" 'BEGIN { printf "%.2f", m / 2 }') ms"
        fi
        echo "."
    fi
    if [[ -s $work/notes.tsv ]]; then
        echo
        echo "Notes:"
        sort -u "$work/notes.tsv" | awk -F'\t' '{ printf "- %s, %s: %s\n", $1, $2, $3 }'
    fi
    echo
    echo "Raw wrk and tool output: bench/work/raw/; server logs: bench/work/<server>/. Took ${elapsed}s."
}

render | tee "$results"
exit 0
