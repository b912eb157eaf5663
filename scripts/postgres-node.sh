#!/usr/bin/env bash
# A PostgreSQL server of the project's own, beside the machine's: for the
# fault tests that crash the database (kill -9) and let it recover, without
# touching the server every other test uses.
#
#   scripts/postgres-node.sh start    # initdb if needed, then start (no-op if running)
#   scripts/postgres-node.sh kill     # kill -9 of the postmaster and its children (a crash)
#   scripts/postgres-node.sh restart  # start again after a kill: crash recovery runs
#   scripts/postgres-node.sh stop     # stop the server, delete its data
#   scripts/postgres-node.sh url      # the admin URL, postgres://postgres@127.0.0.1:<port>/postgres
#   scripts/postgres-node.sh port     # its port
#
# PostgreSQL 15 from /usr/lib/postgresql/15/bin, on 127.0.0.1:$PGNODE_PORT
# (default 5442), trust auth for user postgres, no Unix socket, its data
# and its log (postgres.log) in /tmp/checkout-postgres-<port>: under /tmp,
# not target/, because the server runs as the postgres user when this
# script runs as root (initdb and postgres refuse root) and the repository
# may be in a directory that user cannot enter (/root). Not root, it runs
# as the invoking user.
set -euo pipefail
# The server's user may not enter the caller's directory (/root).
cd /tmp

BIN=/usr/lib/postgresql/15/bin
PORT=${PGNODE_PORT:-5442}
DATA=/tmp/checkout-postgres-$PORT
LOG=$DATA/postgres.log
# In every process title of the server, so stray children can be found
# after the postmaster is gone (each child is its own process group).
NAME=checkout-$PORT

as_server() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() { as_server "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

# The postmaster's pid, if it runs: after a crash postmaster.pid names a
# process that is gone, or by now another one, which must not be signalled.
postmaster() {
    local pid
    pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)
    if [[ -n "$pid" && "$(ps -o args= -p "$pid" 2>/dev/null || true)" == *" -D $DATA" ]]; then
        echo "$pid"
    fi
}

# Processes of this server still alive, the postmaster's children included.
leftovers() { pgrep -f "^postgres: $NAME: " || true; }

boot() {
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        rm -rf "$DATA"
        mkdir -m 700 "$DATA"
        [[ $EUID -ne 0 ]] || chown postgres: "$DATA"
        local out
        out=$(as_server "$BIN/initdb" -D "$DATA" --auth=trust -U postgres \
            --encoding=UTF8 --no-sync 2>&1) || { echo "$out" >&2; exit 1; }
        cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
max_connections = 200
cluster_name = '$NAME'
EOF
    fi
    running && return 0
    # -w waits until the server accepts connections, crash recovery included.
    as_server "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 120 >/dev/null 2>&1 ||
        { tail -n 20 "$LOG" >&2; exit 1; }
    for _ in $(seq 1 100); do
        "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres && return 0
        sleep 0.1
    done
    echo "PostgreSQL on port $PORT does not accept connections" >&2
    exit 1
}

# The postmaster is stopped first, so it forks nothing while its children
# are listed; then all of them die at once. Left alone, the children would
# notice the postmaster's death and exit, but one still running (a long
# statement) would hold the shared memory, and the restart would refuse
# to start.
crash() {
    local pid
    pid=$(postmaster)
    if [[ -n "$pid" ]]; then
        kill -STOP "$pid" 2>/dev/null || true
        # shellcheck disable=SC2046 # one pid per word
        kill -9 "$pid" $(pgrep -P "$pid" || true) 2>/dev/null || true
    fi
    for _ in $(seq 1 50); do
        # Gone, and reaped: until then pg_ctl takes the pid for a live server.
        if [[ -z "$(leftovers)" ]] && ! { [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; }; then
            return 0
        fi
        # shellcheck disable=SC2046
        kill -9 $(leftovers) 2>/dev/null || true
        sleep 0.1
    done
    echo "processes of PostgreSQL on port $PORT outlive kill -9" >&2
    exit 1
}

case "${1:-}" in
start | restart) boot ;;
kill) crash ;;
url) echo "postgres://postgres@127.0.0.1:$PORT/postgres" ;;
port) echo "$PORT" ;;
stop)
    if [[ -d "$DATA" ]]; then
        if running; then
            as_server "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w >/dev/null 2>&1 || true
        fi
        crash
        rm -rf "$DATA"
    fi
    ;;
*)
    sed -n '2,19p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
