#!/bin/sh
# Runs once, when the postgres container starts on an empty data volume
# (mounted into /docker-entrypoint-initdb.d by docker-compose.yml): one
# database and one least-privilege login role per service (init.sql), with
# the passwords of the compose environment (.env, dev defaults in
# docker-compose.yml).
#
# Changing a password later: ALTER ROLE ... PASSWORD, or `docker compose down
# -v` to start from an empty volume (which deletes the data).
set -e

: "${ORDER_DB_PASSWORD:?must be set}"
: "${PAYMENT_DB_PASSWORD:?must be set}"
: "${EMAIL_DB_PASSWORD:?must be set}"

run() {
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres "$@"
}

service() { # database role password
    run -v db="$1" -v role="$2" -v password="$3" -f /etc/checkout/postgres/init.sql
}

service order_db order_service "$ORDER_DB_PASSWORD"
service payment_db payment_service "$PAYMENT_DB_PASSWORD"
service email_db email_service "$EMAIL_DB_PASSWORD"

# The maintenance databases are for the administrator only: a service role
# can reach nothing but its own database.
run -c 'REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC'
