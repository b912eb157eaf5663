#!/usr/bin/env bash
# RabbitMQ nodes of the project's own, beside the machine's broker: for the
# reconnect measurement and the fault tests that stop, kill and restart a
# broker without touching the one every other test uses.
#
#   scripts/rabbitmq-nodes.sh start N     # nodes 1..N (N > 1: clustered with node 1)
#   scripts/rabbitmq-nodes.sh stop-app I  # rabbitmqctl stop_app on node I
#   scripts/rabbitmq-nodes.sh start-app I # rabbitmqctl start_app on node I
#   scripts/rabbitmq-nodes.sh kill I      # kill -9 of node I (a crash)
#   scripts/rabbitmq-nodes.sh boot I      # start node I alone, or again after a kill or halt
#   scripts/rabbitmq-nodes.sh halt I      # stop node I cleanly, keeping its data (boot restarts it)
#   scripts/rabbitmq-nodes.sh port I      # node I's AMQP port
#   scripts/rabbitmq-nodes.sh metrics-port I  # its rabbitmq_prometheus port, when enabled
#   scripts/rabbitmq-nodes.sh eval I EXPR # an Erlang expression on node I (test settings)
#   scripts/rabbitmq-nodes.sh ctl I ARGS  # rabbitmqctl ARGS on node I (queue members, say)
#   scripts/rabbitmq-nodes.sh stop [I]    # stop node I (or every node), delete its data
#
# Node I is `rq<I>@localhost`, AMQP on 127.0.0.1:568<I> (5681, 5682, ...),
# distribution on 2568<I>, with its data, logs and pid file under
# target/rabbitmq/rq<I>. It uses the Debian package's own scripts from
# /usr/lib/rabbitmq/bin (not the /usr/sbin wrappers, which switch user and
# drop this environment), so it runs as the invoking user with that user's
# Erlang cookie. guest/guest may log in from anywhere (loopback only here).
# RABBITMQ_NODE_PLUGINS (e.g. rabbitmq_prometheus) lists the plugins a node
# booted from a clean directory enables; rabbitmq_prometheus then serves on
# 127.0.0.1:1569<I>.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=/usr/lib/rabbitmq/bin
BASE="$PWD/target/rabbitmq"

node_env() {
    local i=$1 dir="$BASE/rq$1"
    mkdir -p "$dir/mnesia" "$dir/log"
    [[ -f "$dir/enabled_plugins" ]] || echo "[${RABBITMQ_NODE_PLUGINS:-}]." > "$dir/enabled_plugins"
    cat > "$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$(port "$i")
loopback_users = none
EOF
    # Only a node with the plugin knows these settings (unknown ones stop
    # a node from booting).
    if [[ ${RABBITMQ_NODE_PLUGINS:-} == *rabbitmq_prometheus* ]]; then
        printf 'prometheus.tcp.port = %s\nprometheus.tcp.ip = 127.0.0.1\n' \
            "$(metrics_port "$i")" >> "$dir/rabbitmq.conf"
    fi
    export RABBITMQ_NODENAME="rq$i@localhost"
    export RABBITMQ_NODE_PORT="$(port "$i")"
    export RABBITMQ_DIST_PORT="$((25680 + i))"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_PID_FILE="$dir/pid"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"
}

port() { echo "$((5680 + $1))"; }
metrics_port() { echo "$((15690 + $1))"; }
ctl() { local i=$1; shift; "$BIN/rabbitmqctl" -q -n "rq$i@localhost" "$@"; }

boot() {
    local i=$1
    (node_env "$i" && "$BIN/rabbitmq-server" -detached)
    # Waits for the pid file, then for the node to boot (await_startup
    # fails at once on a node not yet registered with epmd).
    ctl "$i" wait "$BASE/rq$i/pid" --timeout 120 >/dev/null
}

case "${1:-}" in
start)
    count=${2:?how many nodes}
    for ((i = 1; i <= count; i++)); do boot "$i"; done
    for ((i = 2; i <= count; i++)); do
        ctl "$i" stop_app
        ctl "$i" join_cluster rq1@localhost
        ctl "$i" start_app
    done
    ;;
stop-app) ctl "${2:?node}" stop_app ;;
start-app) ctl "${2:?node}" start_app ;;
kill) kill -9 "$(cat "$BASE/rq${2:?node}/pid")" ;;
boot) boot "${2:?node}" ;;
halt) ctl "${2:?node}" stop "$BASE/rq$2/pid" >/dev/null ;;
port) port "${2:?node}" ;;
metrics-port) metrics_port "${2:?node}" ;;
eval) ctl "${2:?node}" eval "${3:?Erlang expression}" >/dev/null ;;
ctl) shift && ctl "${1:?node}" "${@:2}" ;;
stop)
    for dir in "$BASE"/rq${2:-*}; do
        [[ -d "$dir" ]] || continue
        i=${dir##*/rq}
        pid=$(cat "$dir/pid" 2>/dev/null || true)
        ctl "$i" stop >/dev/null 2>&1 || true
        # Whatever did not stop (or that the CLI could not reach) is killed.
        [[ -z "$pid" ]] || kill -9 "$pid" 2>/dev/null || true
        rm -rf "$dir"
    done
    ;;
*)
    sed -n '2,22p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
