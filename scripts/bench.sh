#!/usr/bin/env bash
# Benchmarks of the checkout pipeline on this machine (issue 6), reproducible:
# release binaries, each scenario on fresh databases (bench_order,
# bench_payment, bench_email, dropped and recreated) and a fresh RabbitMQ
# vhost (`bench`), the services started with their defaults otherwise and
# stopped afterwards. Every figure is written with its command, the load
# average before and after, and the services' resident memory.
#
#   scripts/bench.sh                 # all scenarios: pgbench intake hotrow checkout e2e seed
#   scripts/bench.sh checkout seed   # some of them
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres), RabbitMQ on
# 127.0.0.1:5672 (guest/guest) with rabbitmqctl, and pgbench. The mail goes
# to the load generator's own SMTP server (`loadgen --smtp-sink
# 127.0.0.1:1025`, running while each loadgen runs), whose mailbox every
# audited scenario checks; BENCH_SMTP=maildev starts MailDev instead
# (`npx -y maildev@2`, API on http://127.0.0.1:1080), which costs the
# pipeline's two cores about 2.7 ms of CPU per mail.
#
# Settings (environment):
#   BENCH_OUT           where results go (default target/bench/<timestamp>)
#   BENCH_NO_BUILD=1    use the binaries already built
#   BENCH_DURATION      length of each checkout scenario (default 20s)
#   BENCH_E2E_RATE, BENCH_E2E_DURATION   end-to-end load (default 500/s, 60s)
#   BENCH_SMTP          sink (default) or maildev, see above
#   BENCH_PG_PARAMS     appended to every database URL, e.g. '?sslmode=disable'
#   BENCH_MAIL_AUDIT=1  with maildev: also audit its mailbox in the e2e scenario
#   BENCH_ENV_<service>  extra variables for one service, e.g.
#                       BENCH_ENV_email_service="CONSUMER_PREFETCH=100"
#   CARGO_TARGET_DIR    where the release binaries are
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
OUT=${BENCH_OUT:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
PG=postgres://postgres:postgres@127.0.0.1:5432
# Query string for every connection of the services, pgbench and loadgen,
# e.g. '?sslmode=disable' (Debian's PostgreSQL offers TLS on loopback too).
PG_PARAMS=${BENCH_PG_PARAMS:-}
VHOST=bench
DURATION=${BENCH_DURATION:-20s}
E2E_RATE=${BENCH_E2E_RATE:-500}
E2E_DURATION=${BENCH_E2E_DURATION:-60s}
MAIL_API=http://127.0.0.1:1080
SMTP=${BENCH_SMTP:-sink}
SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=(pgbench intake hotrow checkout e2e seed)
SERVICES=(order-service payment-service email-service gateway)
declare -A PORT=([gateway]=9000 [order-service]=8001 [payment-service]=8002 [email-service]=8003)
declare -A PID=()
MAILDEV_PID=

mkdir -p "$OUT/logs"
SUMMARY=$OUT/summary.txt

say() { echo "$*" | tee -a "$SUMMARY" >&2; }
loadavg() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
psql_admin() { psql "$PG/postgres" -qAt -v ON_ERROR_STOP=1 "$@"; }

machine() {
    say "# $(date -Is) on $(hostname): $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
        "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
    say "# $(psql_admin -c 'SHOW server_version') PostgreSQL, RabbitMQ $(rabbitmqctl -q version 2>/dev/null || echo '?'), $(git rev-parse --short HEAD)"
    say "# database URLs: $PG/<db>${PG_PARAMS:-} (ssl = $(psql_admin -c 'SHOW ssl'))"
}

build() {
    [[ ${BENCH_NO_BUILD:-} == 1 ]] && return
    cargo build --release -p gateway -p order-service -p payment-service -p email-service -p loadgen
}

start_smtp() {
    if [[ $SMTP == sink ]]; then
        say "# SMTP: loadgen --smtp-sink 127.0.0.1:1025 (mailcrab, in the load generator)"
        return
    fi
    if (exec 3<>/dev/tcp/127.0.0.1/1025) 2>/dev/null; then
        say "# SMTP: something already listens on 127.0.0.1:1025"
        return
    fi
    # Its own process group: npx leaves node running when only npx is killed.
    setsid npx -y maildev@2 --smtp 1025 --web 1080 --ip 127.0.0.1 >"$OUT/logs/maildev.log" 2>&1 &
    MAILDEV_PID=$!
    wait_for_port 1080 "MailDev"
    say "# SMTP: MailDev (npx maildev@2) on 1025, API on 1080"
}

wait_for_port() {
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    echo "$2 did not listen on $1" >&2
    return 1
}

fresh_state() {
    for db in bench_order bench_payment bench_email; do
        psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    done
    rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
    rabbitmqctl -q add_vhost "$VHOST" >/dev/null
    rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
}

# start_services PAYMENT_DELAY_MS
start_services() {
    local -A db=([order-service]=bench_order [payment-service]=bench_payment [email-service]=bench_email)
    for service in "${SERVICES[@]}"; do
        local env=(BIND_ADDR=127.0.0.1:${PORT[$service]} LOG_FORMAT=json)
        case $service in
            # The load generator is one client standing for many: the
            # per-client rate limit (100/s by default) would measure itself.
            gateway) env+=(ORDER_SERVICE_URL=http://127.0.0.1:8001 RATE_LIMIT_PER_SECOND=0) ;;
            *) env+=(DATABASE_URL=$PG/${db[$service]}$PG_PARAMS RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/$VHOST) ;;
        esac
        [[ $service == payment-service ]] && env+=(PAYMENT_DELAY_MS=$1)
        # Experiments: BENCH_ENV_email_service="CONSUMER_PREFETCH=100" and the like.
        local extra=BENCH_ENV_${service//-/_}
        [[ -n ${!extra:-} ]] && read -ra more <<<"${!extra}" && env+=("${more[@]}")
        env "${env[@]}" "$BIN/$service" >>"$OUT/logs/$service.log" 2>&1 &
        PID[$service]=$!
        # order-service first: it creates the exchange the others bind to.
        wait_ready "$service"
    done
}

wait_ready() {
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:${PORT[$1]}/ready" >/dev/null && return 0
        kill -0 "${PID[$1]}" 2>/dev/null || { echo "$1 exited; see $OUT/logs/$1.log" >&2; return 1; }
        sleep 0.2
    done
    echo "$1 not ready after 60 s" >&2
    return 1
}

stop_services() {
    for service in "${!PID[@]}"; do kill -TERM "${PID[$service]}" 2>/dev/null || true; done
    for service in "${!PID[@]}"; do wait "${PID[$service]}" 2>/dev/null || true; done
    PID=()
}

# rss LABEL: VmRSS now and VmHWM (peak) of each service, in MB.
rss() {
    local line="  RSS $1:"
    for service in "${SERVICES[@]}"; do
        local status=/proc/${PID[$service]}/status
        local now peak
        now=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "$status")
        peak=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "$status")
        line+=" $service ${now} MB (peak ${peak} MB);"
    done
    say "$line"
}

# batching LABEL: saves each service's /metrics page and prints the mean
# size of its ack frames and batched statements (consumer_ack_batch_size,
# db_batch_size), the two places work is coalesced.
batching() {
    local line="  batching $1:"
    for service in order-service payment-service email-service; do
        local page=$OUT/metrics-$1-$service.txt
        curl -sf "http://127.0.0.1:${PORT[$service]}/metrics" >"$page" || continue
        line+=" $service $(awk '
            /^consumer_ack_batch_size_sum/ {as += $NF} /^consumer_ack_batch_size_count/ {ac += $NF}
            /^db_batch_size_sum/ {ds += $NF} /^db_batch_size_count/ {dc += $NF}
            END {printf "acks %.1f/frame, statements %.1f/batch", ac ? as / ac : 0, dc ? ds / dc : 0}' "$page");"
    done
    say "$line"
}

cleanup() {
    stop_services
    [[ -n $MAILDEV_PID ]] && kill -- "-$MAILDEV_PID" 2>/dev/null || true
}
trap cleanup EXIT

# CPU seconds (user + system) used so far by the given processes.
cpu_seconds() {
    local ticks=0
    for pid in "$@"; do
        [[ -n $pid && -r /proc/$pid/stat ]] || continue
        # Fields 14 and 15 after the command name (which may hold spaces).
        ticks=$((ticks + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "scale=1; $ticks / $(getconf CLK_TCK)" | bc
}

# cpu_counts: "name=seconds ..." for each service, PostgreSQL and RabbitMQ.
cpu_counts() {
    local out=""
    for service in "${SERVICES[@]}"; do out+="$service=$(cpu_seconds "${PID[$service]:-}") "; done
    out+="postgres=$(cpu_seconds $(pgrep -u postgres)) rabbitmq=$(cpu_seconds $(pgrep -f beam.smp))"
    [[ -n $MAILDEV_PID ]] && out+=" maildev=$(cpu_seconds $(pgrep -g "$MAILDEV_PID"))"
    echo "$out"
}

# cpu_delta BEFORE AFTER: CPU seconds each process used in between.
cpu_delta() {
    local -A before=()
    for kv in $1; do before[${kv%%=*}]=${kv#*=}; done
    local line=""
    for kv in $2; do
        local name=${kv%%=*}
        line+=" $name $(echo "${kv#*=} - ${before[$name]:-0}" | bc)s;"
    done
    echo "$line"
}

# loadgen NAME ARGS...: one measured run, its report kept in $OUT/NAME.txt.
loadgen() {
    local name=$1
    shift
    local args=(--order-db-url "$PG/bench_order$PG_PARAMS" --payment-db-url "$PG/bench_payment$PG_PARAMS"
        --email-db-url "$PG/bench_email$PG_PARAMS" "$@")
    [[ $SMTP == sink ]] && args+=(--smtp-sink 127.0.0.1:1025)
    say ""
    say "## $name: loadgen $*"
    say "  before: $(loadavg)"
    local status=0 cpu_before
    cpu_before=$(cpu_counts)
    local TIMEFORMAT="loadgen=%U+%S"
    { time "$BIN/loadgen" "${args[@]}" >"$OUT/$name.txt" 2>"$OUT/$name.progress"; } 2>"$OUT/$name.time" ||
        status=$?
    sed 's/^/  /' "$OUT/$name.txt" | tee -a "$SUMMARY" >&2
    say "  after:  $(loadavg); exit status $status"
    # Where the time went (PostgreSQL and RabbitMQ include other users of the machine).
    say "  CPU:   $(cpu_delta "$cpu_before" "$(cpu_counts)") $(sed 's/+/ user + /; s/$/ sys/' "$OUT/$name.time")"
}

scenario_pgbench() {
    local db=bench_pgbench
    psql_admin -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    for migration in order-service/migrations/*.sql; do
        psql "$PG/$db" -q -v ON_ERROR_STOP=1 -f "$migration"
    done
    # checkout.sql: the first version's six round trips; checkout_single.sql:
    # the one statement order-service runs now (catalog in memory).
    for script in checkout checkout_single; do
        for clients in 1 8 64; do
            say ""
            say "## pgbench $script, $clients clients: pgbench -n -M prepared -c $clients -j 2 -T 15 -f bench/$script.sql"
            say "  before: $(loadavg)"
            pgbench "$PG/$db$PG_PARAMS" -n -M prepared -c "$clients" -j 2 -T 15 -f "bench/$script.sql" \
                >"$OUT/pgbench-$script-$clients.txt" 2>&1
            grep -E '^(tps|latency average)' "$OUT/pgbench-$script-$clients.txt" | sed 's/^/  /' | tee -a "$SUMMARY" >&2
            say "  after:  $(loadavg)"
        done
    done
    psql_admin -c "DROP DATABASE $db WITH (FORCE)"
}

scenario_checkout() {
    fresh_state
    start_services 0
    sleep 5
    rss idle
    loadgen checkout-1 --connections 1 --duration "$DURATION" --no-audit
    loadgen checkout-64 --connections 64 --duration "$DURATION" --no-audit
    rss "after the checkout runs"
    stop_services
}

# The checkout path alone (gateway, order-service, PostgreSQL, the relay and
# RabbitMQ): payment-service and email-service declare their queues and are
# stopped, so the orders wait in payment_service_queue and the rest of the
# pipeline does not share the two cores. This is what compares with the
# pgbench ceiling of the checkout statement.
scenario_intake() {
    fresh_state
    start_services 0
    stop_consumers
    loadgen intake-1 --connections 1 --duration "$DURATION" --no-audit
    loadgen intake-64 --connections 64 --duration "$DURATION" --no-audit
    stop_services
}

# The hot row: every checkout of a tracked product takes its units from that
# product's one row, locked until the checkout's transaction commits. Intake
# at 64 connections buying product 1 (tracked) against product 2 (not
# tracked), alternately and twice, in one run.
scenario_hotrow() {
    fresh_state
    start_services 0
    stop_consumers
    for round in 1 2; do
        loadgen "hotrow-untracked-$round" --connections 64 --duration "$DURATION" --no-audit --product-id 2
        loadgen "hotrow-tracked-$round" --connections 64 --duration "$DURATION" --no-audit --product-id 1
    done
    stop_services
}

# payment-service and email-service have declared their queues: stop them,
# so the orders wait in payment_service_queue.
stop_consumers() {
    for service in payment-service email-service; do
        kill -TERM "${PID[$service]}"
        wait "${PID[$service]}" 2>/dev/null || true
        unset "PID[$service]"
    done
    sleep 2
}

scenario_e2e() {
    fresh_state
    start_services 0
    sleep 5
    rss idle
    local mail=()
    [[ ${BENCH_MAIL_AUDIT:-} == 1 && -n $MAILDEV_PID ]] && mail=(--mail-api "$MAIL_API")
    loadgen "e2e-$E2E_RATE" --rate "$E2E_RATE" --duration "$E2E_DURATION" --drain-timeout 300s "${mail[@]}"
    rss "after the end-to-end run"
    batching e2e
    stop_services
}

scenario_seed() {
    fresh_state
    start_services 1000
    sleep 2
    local mail=()
    [[ -n $MAILDEV_PID ]] && mail=(--mail-api "$MAIL_API")
    loadgen seed-100 --rate 1000 --requests 100 "${mail[@]}"
    stop_services
}

build
machine
start_smtp
for scenario in "${SCENARIOS[@]}"; do
    "scenario_$scenario"
done
say ""
say "# results in $OUT"
