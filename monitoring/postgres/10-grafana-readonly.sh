#!/bin/sh
# /docker-entrypoint-initdb.d hook of the postgres image: create Grafana's read-only role.
# Needs GRAFANA_PG_PASSWORD; POSTGRES_USER/POSTGRES_DB come from the image's environment.
# Mount this directory at /docker-entrypoint-initdb.d. The image runs only top-level *.sh and
# *.sql files, so sql/grafana_readonly.sql (which needs the password variable) is run from
# here and not on its own.
set -eu
: "${GRAFANA_PG_PASSWORD:?set GRAFANA_PG_PASSWORD for the grafana_ro role}"
here=$(cd "$(dirname "${BASH_SOURCE:-$0}")" && pwd)  # run, or sourced by the image
psql -v ON_ERROR_STOP=1 -v ro_password="$GRAFANA_PG_PASSWORD" \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" \
  -f "$here/sql/grafana_readonly.sql"
