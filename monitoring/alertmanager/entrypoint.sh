#!/bin/sh
# Render alertmanager.yml with the Telegram settings from the environment, check it, and
# start Alertmanager with it (extra arguments are passed through).
#
#   TELEGRAM_BOT_TOKEN_FILE  file holding the bot token (a Docker secret), or
#   TELEGRAM_BOT_TOKEN       the token itself
#   TELEGRAM_CHAT_ID_FILE    file holding the chat id (a Docker secret), or
#   TELEGRAM_CHAT_ID         the chat to post to (integer, negative for groups)
#   TELEGRAM_API_URL         default https://api.telegram.org
#   GRAFANA_URL              where people open Grafana (default http://localhost:3000): an
#                            alert whose rule has a `dashboard` annotation (/d/<uid>) links
#                            to that dashboard in the message
#   ALERTMANAGER_CONFIG_TEMPLATE  default: alertmanager.yml next to this script
#   ALERTMANAGER_CONFIG_OUT  default /tmp/alertmanager/alertmanager.yml (mode 600)
#   ALERTMANAGER_BIN         default /bin/alertmanager, else alertmanager or
#                            prometheus-alertmanager from PATH
#   ALERTMANAGER_RENDER_ONLY=1  render and check, do not start
set -eu

here=$(cd "$(dirname "$0")" && pwd)
template=${ALERTMANAGER_CONFIG_TEMPLATE:-$here/alertmanager.yml}
out=${ALERTMANAGER_CONFIG_OUT:-/tmp/alertmanager/alertmanager.yml}
api_url=${TELEGRAM_API_URL:-https://api.telegram.org}

die() { echo "alertmanager entrypoint: $*" >&2; exit 64; }

if [ -n "${TELEGRAM_BOT_TOKEN_FILE:-}" ]; then
  [ -r "$TELEGRAM_BOT_TOKEN_FILE" ] || die "TELEGRAM_BOT_TOKEN_FILE=$TELEGRAM_BOT_TOKEN_FILE is not readable"
  token=$(tr -d ' \r\n' < "$TELEGRAM_BOT_TOKEN_FILE")
else
  token=${TELEGRAM_BOT_TOKEN:-}
fi
[ -n "$token" ] || die "set TELEGRAM_BOT_TOKEN_FILE or TELEGRAM_BOT_TOKEN (the token from @BotFather)"
# BotFather tokens look like 123456789:AAH...; the check also keeps sed and YAML safe.
printf '%s' "$token" | grep -Eq '^[0-9]+:[A-Za-z0-9_-]+$' \
  || die "the Telegram bot token does not look like <digits>:<letters, digits, _ or ->"

if [ -n "${TELEGRAM_CHAT_ID_FILE:-}" ]; then
  [ -r "$TELEGRAM_CHAT_ID_FILE" ] || die "TELEGRAM_CHAT_ID_FILE=$TELEGRAM_CHAT_ID_FILE is not readable"
  chat_id=$(tr -d ' \r\n' < "$TELEGRAM_CHAT_ID_FILE")
else
  chat_id=${TELEGRAM_CHAT_ID:-}
fi
printf '%s' "$chat_id" | grep -Eq '^-?[0-9]+$' \
  || die "TELEGRAM_CHAT_ID must be set to an integer chat id (negative for groups), got '$chat_id'"

printf '%s' "$api_url" | grep -Eq '^https?://[A-Za-z0-9.:/_-]+$' \
  || die "TELEGRAM_API_URL must be an http(s) URL, got '$api_url'"

grafana_url=${GRAFANA_URL:-http://localhost:3000}
grafana_url=${grafana_url%/}
# The same strict shape: it goes into sed and into an HTML attribute of the message.
printf '%s' "$grafana_url" | grep -Eq '^https?://[A-Za-z0-9.:/_-]+$' \
  || die "GRAFANA_URL must be an http(s) URL, got '$grafana_url'"

config_dir=$(cd "$(dirname "$template")" && pwd)
mkdir -p "$(dirname "$out")"
out_dir=$(cd "$(dirname "$out")" && pwd)
umask 077
# The message templates, with Grafana's address filled in, next to the rendered config.
mkdir -p "$out_dir/templates"
for tmpl in "$config_dir"/templates/*.tmpl; do
  sed -e "s|__GRAFANA_URL__|$grafana_url|g" "$tmpl" > "$out_dir/templates/$(basename "$tmpl")"
done
sed -e "s|__TELEGRAM_BOT_TOKEN__|$token|g" \
    -e "s|__TELEGRAM_CHAT_ID__|$chat_id|g" \
    -e "s|__TELEGRAM_API_URL__|$api_url|g" \
    -e "s|__CONFIG_DIR__|$out_dir|g" \
    "$template" > "$out.tmp"
mv "$out.tmp" "$out"

if command -v amtool >/dev/null 2>&1; then
  amtool check-config "$out" >/dev/null || { amtool check-config "$out" >&2; exit 65; }
fi

[ "${ALERTMANAGER_RENDER_ONLY:-0}" = 1 ] && exit 0

bin=${ALERTMANAGER_BIN:-}
if [ -z "$bin" ]; then
  for candidate in /bin/alertmanager alertmanager prometheus-alertmanager; do
    if command -v "$candidate" >/dev/null 2>&1; then bin=$candidate; break; fi
  done
fi
[ -n "$bin" ] || die "no alertmanager binary found (set ALERTMANAGER_BIN)"
exec "$bin" --config.file="$out" "$@"
