#!/usr/bin/env bash
# Scaling figures for payment-service (docs/performance.md): the `scaling`
# benchmark drains one burst of order.order.created events by 1 and then by 3
# replica processes of the real binary (release build), competing for one
# queue in a fresh RabbitMQ vhost, sharing one fresh database. Prints the
# drain times, the speed-up, the payments each replica made (from its
# /metrics), and the load average before and after (other work on the
# machine skews the figures: note it with them).
#
#   scripts/scaling.sh
#   SCALING_ORDERS=120 SCALING_REPLICAS=1,2,3,4 scripts/scaling.sh
#
# Settings (environment): SCALING_ORDERS (60), SCALING_REPLICAS (1,3),
# PAYMENT_DELAY_MS (300), CONSUMER_PREFETCH (1). Needs PostgreSQL and
# RabbitMQ as for scripts/test.sh (and rabbitmqctl, for the vhost).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
export TEST_RABBITMQ_URL="${TEST_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

# Build first, so compiling does not overlap the measurement.
cargo bench -p payment-service --bench scaling --no-run
timeout "${SCALING_TIMEOUT_SECS:-900}" cargo bench -p payment-service --bench scaling
