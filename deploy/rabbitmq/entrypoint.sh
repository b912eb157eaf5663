#!/bin/sh
# The rabbitmq container's entrypoint (docker-compose.yml): renders
# definitions.json with the passwords of the compose environment into the file
# rabbitmq.conf loads at boot, then hands over to the image's own entrypoint.
#
# Passwords are limited to the characters that need no escaping in a URL, in
# JSON and here: A-Z a-z 0-9 . _ ~ - (the services' RABBITMQ_URL carries them).
set -e

template=/etc/checkout/rabbitmq/definitions.json
target=/var/lib/rabbitmq/checkout-definitions.json

substitutions=
for var in RABBITMQ_ADMIN_PASSWORD RABBITMQ_ORDER_PASSWORD RABBITMQ_PAYMENT_PASSWORD RABBITMQ_EMAIL_PASSWORD; do
    eval "value=\${$var:-}"
    case $value in
        '' | *[!A-Za-z0-9._~-]*)
            echo "entrypoint.sh: $var must be set and use only A-Z a-z 0-9 . _ ~ -" >&2
            exit 1
            ;;
    esac
    substitutions="$substitutions -e s/\${$var}/$value/g"
done

umask 077
# shellcheck disable=SC2086 # word splitting of the sed expressions is intended
sed $substitutions "$template" > "$target.tmp"
if grep -q '\${' "$target.tmp"; then
    echo "entrypoint.sh: $template has a placeholder this script does not fill" >&2
    exit 1
fi
mv "$target.tmp" "$target"
# The image's entrypoint starts the broker as user rabbitmq when run as root.
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
    chown rabbitmq "$target"
fi

exec docker-entrypoint.sh "$@"
