#!/usr/bin/env bash
# Build the otel-assist Collector (otelcol-assist) from collector/manifest.yaml with the
# OpenTelemetry Collector Builder, and print the binary's path on stdout (last line).
#
# The binary is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/otel-assist/collector/<hash>/
# where <hash> covers the manifest and the builder version, so an unchanged manifest costs
# nothing and any edit rebuilds. Go's own module and build caches stay at their defaults,
# so a rebuild after a small manifest change takes seconds to a minute, not minutes.
#
#   collector/build.sh            build if needed, print the path
#   OTELCOL_ASSIST_REBUILD=1 ...  ignore the cached binary
#
# Needs Go >= 1.26 (the Collector v0.165 modules' minimum). Nothing else is downloaded
# except Go modules through the Go module proxy.
set -euo pipefail

BUILDER_VERSION=v0.165.0   # keep equal to the Collector release pinned in manifest.yaml
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
manifest="$here/manifest.yaml"

log() { echo "collector/build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ -r "$manifest" ] || die "missing $manifest"

# --- Go ---------------------------------------------------------------------------------
# The first Go >= 1.26 among: $GO, `go` on PATH, /usr/local/go/bin/go (an older distro Go
# on PATH must not hide a newer one in /usr/local/go).
go_ok() {
  case "$("$1" env GOVERSION 2>/dev/null)" in
    go1.2[6-9]*|go1.[3-9][0-9]*) return 0 ;;
    *) return 1 ;;
  esac
}
GO_FOUND=""
for candidate in "${GO:-}" "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  [ -n "$GO_FOUND" ] || GO_FOUND=$candidate
  if go_ok "$candidate"; then GO=$candidate; break; fi
  GO=""
done
hash_input=$( { cat "$manifest"; echo "builder=$BUILDER_VERSION"; uname -sm; } )
hash=$(printf '%s' "$hash_input" | sha256sum | cut -c1-16)
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/otel-assist/collector"
out_dir="$cache_root/$hash"
binary="$out_dir/otelcol-assist"

if [ -x "$binary" ] && [ -z "${OTELCOL_ASSIST_REBUILD:-}" ]; then
  log "cached: $binary"
  echo "$binary"
  exit 0
fi

if [ -z "${GO:-}" ]; then
  if [ -n "$GO_FOUND" ]; then
    die "Go >= 1.26 is needed to build Collector $BUILDER_VERSION; found only $GO_FOUND ($("$GO_FOUND" env GOVERSION 2>/dev/null || echo unknown)).
  Install a newer Go into /usr/local/go or set GO=/path/to/go."
  fi
  die "Go is not installed (no 'go' on PATH and no /usr/local/go/bin/go).
  The Collector is built from collector/manifest.yaml with the OpenTelemetry Collector
  Builder, which needs Go >= 1.26: install it (the official tarball into /usr/local/go, or
  your distribution's golang package if it is new enough), or set GO=/path/to/go."
fi
go_version=$("$GO" env GOVERSION)
export PATH="$(dirname "$GO"):$PATH"

mkdir -p "$cache_root"
# One build at a time per cache (parallel test runs, make -j): the second waits, then finds
# the binary built by the first.
exec 9>"$cache_root/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [ -x "$binary" ] && [ -z "${OTELCOL_ASSIST_REBUILD:-}" ]; then
  log "cached (built by a concurrent run): $binary"
  echo "$binary"
  exit 0
fi

# --- builder ---------------------------------------------------------------------------
gobin=$("$GO" env GOBIN)
[ -n "$gobin" ] || gobin="$("$GO" env GOPATH | cut -d: -f1)/bin"
builder="$gobin/builder"
if ! { [ -x "$builder" ] && "$builder" version 2>&1 | grep -q "$BUILDER_VERSION"; }; then
  log "installing the Collector Builder $BUILDER_VERSION with go install"
  "$GO" install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
fi

# --- build -----------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/otelcol-assist-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$manifest" "$work/manifest.yaml"
log "building otelcol-assist (manifest hash $hash) with $go_version; a cold build takes several minutes"
start=$(date +%s)
( cd "$work" && "$builder" --config manifest.yaml ) >"$work/build.log" 2>&1 || {
  tail -n 40 "$work/build.log" >&2
  die "the Collector Builder failed (full log above: last 40 lines)"
}
built="$work/_build/otelcol-assist"
[ -x "$built" ] || die "the builder finished but $built is missing"
"$built" --version >/dev/null || die "the built binary does not run: $built"
mkdir -p "$out_dir"
cp "$built" "$out_dir/otelcol-assist.tmp"
mv "$out_dir/otelcol-assist.tmp" "$binary"
cp "$manifest" "$out_dir/manifest.yaml"
log "built in $(( $(date +%s) - start ))s: $binary"
echo "$binary"
