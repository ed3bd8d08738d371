#!/usr/bin/env bash
# Start the Debian PostgreSQL cluster on this machine (if it is not running) and make sure the
# hub's test role and database exist. Prints the connection URL on stdout.
# Used by .ci/run and by the PostgreSQL store fixture (tests/conftest.py).
# No default password: unless HUB_PG_PASSWORD is given, a random one is set on every call (the
# URL printed is the only place it appears; the tests check it never reaches a log line).
set -euo pipefail
DB=${HUB_PG_DB:-hub_test}
USER_NAME=${HUB_PG_USER:-hub}
PASSWORD=${HUB_PG_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}
command -v pg_lsclusters >/dev/null || { echo "postgresql is not installed: apt-get install postgresql" >&2; exit 1; }
read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -1)
if [ -z "${VERSION:-}" ]; then
  echo "no PostgreSQL cluster exists: pg_createcluster <version> main" >&2; exit 1
fi
if [ "$STATUS" != "online" ]; then
  pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else sh -c "$1"; fi; }
as_postgres "psql -p $PORT -tAc \"SELECT 1 FROM pg_roles WHERE rolname='$USER_NAME'\"" | grep -q 1 \
  || as_postgres "psql -p $PORT -qc \"CREATE ROLE $USER_NAME LOGIN\"" >&2
as_postgres "psql -p $PORT -qc \"ALTER ROLE $USER_NAME PASSWORD '$PASSWORD'\"" >&2
as_postgres "psql -p $PORT -tAc \"SELECT 1 FROM pg_database WHERE datname='$DB'\"" | grep -q 1 \
  || as_postgres "createdb -p $PORT -O $USER_NAME $DB" >&2
echo "postgresql://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB"
