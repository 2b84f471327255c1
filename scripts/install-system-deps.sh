#!/usr/bin/env bash
# Installs the real servers the test-suite runs on loopback, from Debian packages.
# Idempotent: a package is installed only when its program is missing.
set -euo pipefail

declare -A want=(
  [/usr/lib/postgresql/15/bin/postgres]=postgresql
  [/usr/bin/redis-server]=redis-server
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/promtool]=prometheus
  [/usr/bin/prometheus-alertmanager]=prometheus-alertmanager
  [/usr/bin/amtool]=prometheus-alertmanager
  [/usr/bin/chromium]=chromium
  [/usr/bin/wrk]=wrk
  [/usr/bin/node]=nodejs   # runs Grafana's LogQL grammar (tests/logql)
  [/usr/bin/npm]=npm
  [/usr/bin/prometheus-postgres-exporter]=prometheus-postgres-exporter
  [/usr/bin/prometheus-redis-exporter]=prometheus-redis-exporter
)
missing=()
for bin in "${!want[@]}"; do
  [ -x "$bin" ] || missing+=("${want[$bin]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system deps: all present"
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "system deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps the install small; the packages' own services are not used:
# tests start every server themselves on free loopback ports.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged daemons on their default ports; stop them so they cannot
# collide with anything the tests start.
for svc in redis-server prometheus prometheus-alertmanager prometheus-node-exporter \
  prometheus-postgres-exporter prometheus-redis-exporter postgresql; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
echo "system deps: done"
