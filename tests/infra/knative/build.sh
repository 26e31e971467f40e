#!/usr/bin/env bash
# Build knvalidate (Knative manifest validator, see main.go) into
#   ${XDG_CACHE_HOME:-$HOME/.cache}/streamforge-qm/knative/bin/knvalidate
# Idempotent: rebuilds only when go.mod, go.sum, the Go sources or this script
# change (a hash of them is stored next to the binary). Works with an empty
# module cache (downloads through GOPROXY). Prints the time taken.
# Options: --force (rebuild), --print-dir (print the bin dir and exit).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/streamforge-qm/knative"
bindir="$cache_root/bin"
force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    --print-dir) echo "$bindir"; exit 0 ;;
    *) echo "usage: $0 [--force] [--print-dir]" >&2; exit 2 ;;
  esac
done

command -v go >/dev/null || { echo "build.sh: 'go' not found in PATH" >&2; exit 1; }

start=$(date +%s)
key="$(cd "$here" && cat go.mod go.sum build.sh $(find . -name '*.go' -not -path './testdata/*' | LC_ALL=C sort) | sha256sum | cut -c1-16)"

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9   # serialise concurrent builds (e.g. parallel test runs)

if [[ $force -eq 0 && -x "$bindir/knvalidate" && -f "$bindir/.build-key" && "$(cat "$bindir/.build-key")" == "$key" ]]; then
  echo "knvalidate: up to date in $bindir (key $key, $(( $(date +%s) - start ))s)"
  exit 0
fi

cd "$here"
echo "knvalidate: building into $bindir with $(go version) ..."
export CGO_ENABLED=0
tmp="$(mktemp -d "$cache_root/build.XXXXXX")"
chmod 0755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
nice -n 10 go build -buildvcs=false -trimpath -o "$tmp/knvalidate" .
echo "$key" > "$tmp/.build-key"

rm -rf "$bindir.old"
[[ -d "$bindir" ]] && mv "$bindir" "$bindir.old"
mv "$tmp" "$bindir"
rm -rf "$bindir.old"
trap - EXIT

"$bindir/knvalidate" --print-versions 2>/dev/null
echo "knvalidate: built in $(( $(date +%s) - start ))s -> $bindir/knvalidate"
