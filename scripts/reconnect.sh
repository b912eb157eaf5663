#!/usr/bin/env bash
# How long the services take to consume again after a broker restart
# (docs/guarantees.md, "Survives restarts"). The three consuming services
# run as release binaries against a RabbitMQ node of their own
# (scripts/rabbitmq-nodes.sh, so the machine's broker is never touched) and
# fresh databases. Each round restarts the node, alternately with
# `rabbitmqctl stop_app`/`start_app` and with `kill -9` followed by a start,
# and measures the time from the node accepting connections again to every
# service answering /ready 200 (its connection up and its consumer attached
# to its queue). At the end it prints each service's reconnects and
# in-process restarts from /metrics.
#
#   scripts/reconnect.sh            # 20 rounds
#   ROUNDS=4 scripts/reconnect.sh
#
# Needs PostgreSQL as for scripts/test.sh, curl and the Debian RabbitMQ.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-20}
NODES=scripts/rabbitmq-nodes.sh
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
SERVICES=(order-service payment-service email-service)
PORTS=(18181 18182 18183)
LOGS=target/reconnect
mkdir -p "$LOGS"

now() { date +%s.%N; }
elapsed() { echo "$1 $2" | awk '{ printf "%.2f", $2 - $1 }'; }

cargo build --release -p order-service -p payment-service -p email-service

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$NODES" stop
}
trap cleanup EXIT

"$NODES" stop
"$NODES" start 1
AMQP_PORT=$("$NODES" port 1)

for i in "${!SERVICES[@]}"; do
    service=${SERVICES[$i]}
    db="reconnect_${service%-service}"
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    BIND_ADDR=127.0.0.1:${PORTS[$i]} \
        DATABASE_URL="$PG/$db" \
        RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f" \
        SMTP_HOST=127.0.0.1 SMTP_PORT=1 \
        LOG_FORMAT=json \
        "target/release/$service" > "$LOGS/$service.log" 2>&1 &
    pids+=($!)
done

ready() { curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$1/ready"; }
all_ready() { for port in "${PORTS[@]}"; do ready "$port" || return 1; done; }
none_ready() { for port in "${PORTS[@]}"; do ! ready "$port" || return 1; done; }
accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$AMQP_PORT") 2>/dev/null; }
wait_for() { # wait_for SECONDS WHAT COMMAND...
    local deadline=$(($(date +%s) + $1)) what=$2
    shift 2
    until "$@"; do
        (($(date +%s) < deadline)) || { echo "reconnect.sh: timed out waiting for $what" >&2; exit 1; }
        sleep 0.02
    done
}

wait_for 120 "the services to be ready" all_ready
echo "reconnect.sh: $ROUNDS rounds; uptime: $(uptime)"
times=()
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then
        how="stop_app/start_app"
        "$NODES" stop-app 1
        wait_for 30 "the services to see the broker go" none_ready
        "$NODES" start-app 1 &
    else
        how="kill -9/start"
        "$NODES" kill 1
        wait_for 30 "the services to see the broker go" none_ready
        "$NODES" boot 1 > /dev/null &
    fi
    starter=$!
    wait_for 180 "the broker to accept connections" accepts
    back=$(now)
    wait_for 120 "every consumer to attach again" all_ready
    took=$(elapsed "$back" "$(now)")
    wait "$starter"
    times+=("$took")
    printf 'reconnect.sh: round %2d (%s): consuming again %s s after the broker accepted connections\n' \
        "$round" "$how" "$took"
done

printf '%s\n' "${times[@]}" | sort -n | awk '
    { t[NR] = $1; if ($1 <= 5) ok++ }
    END { printf "reconnect.sh: %d rounds: min %.2f s, median %.2f s, max %.2f s; %d of %d within 5 s\n",
          NR, t[1], t[int((NR + 1) / 2)], t[NR], ok, NR }'
for i in "${!SERVICES[@]}"; do
    metrics=$(curl -fs "http://127.0.0.1:${PORTS[$i]}/metrics")
    sum() { echo "$metrics" | awk -v name="$1" '$1 ~ "^"name"({|$)" { s += $2 } END { print s + 0 }'; }
    echo "reconnect.sh: ${SERVICES[$i]}: amqp_reconnects_total $(sum amqp_reconnects_total)," \
        "service_restarts_total $(sum service_restarts_total)"
done
