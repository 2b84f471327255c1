#!/bin/sh
# Run a command as a monitored cron job: check in to rest_service when it starts and when it
# ends (ok, or error with its exit code), then exit with the command's own exit code.
#
#   otel-assist-checkin.sh nightly-backup /usr/local/bin/backup --full
#
# Environment (the same variables the history shipper uses):
#   OTEL_ASSIST_HISTORY_URL    rest_service's API, e.g. http://rest:8000/api/v1   (required)
#   OTEL_ASSIST_HISTORY_TOKEN  a token with the ingest scope                       (required)
#   OTEL_ASSIST_CHECKIN_TIMEOUT  seconds per check-in request (default 10)
#
# A check-in that cannot be delivered is reported on stderr and never stops or fails the
# command: monitoring must not break the job. The command gets CORRELATION_ID in its
# environment; the same id is on both check-ins, so its logs and its run are linked.
# See docs/monitors.md.
set -u

if [ "$#" -lt 2 ]; then
    echo "usage: $0 MONITOR_SLUG COMMAND [ARGS...]" >&2
    exit 64
fi
slug=$1
shift
url=${OTEL_ASSIST_HISTORY_URL:?OTEL_ASSIST_HISTORY_URL is not set}
token=${OTEL_ASSIST_HISTORY_TOKEN:?OTEL_ASSIST_HISTORY_TOKEN is not set}
timeout=${OTEL_ASSIST_CHECKIN_TIMEOUT:-10}

if [ -r /proc/sys/kernel/random/uuid ]; then
    check_in_id=$(cat /proc/sys/kernel/random/uuid)
else
    check_in_id="$(date +%s)-$$-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
fi
CORRELATION_ID=$check_in_id
export CORRELATION_ID

checkin() {
    # The token goes in a header read from stdin, so it never shows in `ps`.
    printf 'Authorization: Bearer %s\n' "$token" |
        curl -fsS -o /dev/null --max-time "$timeout" --retry 3 --retry-connrefused \
            -X POST -H @- "$url/monitors/$slug/checkins" \
            --data-urlencode "check_in_id=$check_in_id" \
            --data-urlencode "correlation_id=$CORRELATION_ID" "$@" ||
        echo "otel-assist-checkin: check-in to $slug failed; the command runs anyway" >&2
}

started=$(date +%s)
checkin -d status=in_progress
"$@"
code=$?
duration=$(($(date +%s) - started))
if [ "$code" -eq 0 ]; then
    checkin -d status=ok -d "duration=$duration"
else
    checkin -d status=error -d "duration=$duration" -d "exit_code=$code"
fi
exit "$code"
