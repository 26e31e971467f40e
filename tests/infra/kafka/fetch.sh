#!/usr/bin/env bash
# Fetch the Apache Kafka broker runtime (jars only) from Maven Central into a per-user cache.
#
#   tests/infra/kafka/fetch.sh            # prints the libs dir on stdout (last line)
#   tests/infra/kafka/fetch.sh --force    # re-copy even if the cache looks complete
#
# Result: ${XDG_CACHE_HOME:-$HOME/.cache}/streamforge-qm/kafka/<version>/libs/*.jar
# Idempotent and safe to run concurrently (flock). Works on a fresh machine with an empty
# ~/.m2: only `mvn` and network access to Maven Central are needed.
# Env: MVN (default: mvn), STREAMFORGE_KAFKA_CACHE (overrides the cache root).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"
force=0
[[ "${1:-}" == "--force" ]] && force=1

version="$(sed -n 's:^[[:space:]]*<kafka.version>\([0-9][^<]*\)</kafka.version>.*:\1:p' "$pom" | sed -n 1p)"
if [[ -z "$version" ]]; then
  echo "fetch.sh: cannot read <kafka.version> from $pom" >&2
  exit 2
fi

cache_root="${STREAMFORGE_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamforge-qm/kafka}"
dest="$cache_root/$version"
libs="$dest/libs"
stamp="$libs/.complete"
# The stamp records the pom's checksum: editing the pom (e.g. log4j version) refreshes the cache.
want="$(sha256sum "$pom" | cut -d' ' -f1)"

is_complete() {
  [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]] \
    && compgen -G "$libs/kafka_2.13-$version.jar" >/dev/null
}

if [[ $force -eq 0 ]] && is_complete; then
  echo "$libs"
  exit 0
fi

mkdir -p "$dest"
exec 9>"$dest/.fetch.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

# Another process may have finished while we waited for the lock.
if [[ $force -eq 0 ]] && is_complete; then
  echo "$libs"
  exit 0
fi

mvn_bin="${MVN:-mvn}"
if ! command -v "$mvn_bin" >/dev/null 2>&1; then
  echo "fetch.sh: '$mvn_bin' not found (install Maven, e.g. apt-get install maven)" >&2
  exit 3
fi

tmp="$(mktemp -d "$dest/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "fetch.sh: resolving org.apache.kafka:kafka_2.13:$version into $libs" >&2
# -q keeps stdout clean (only the final path goes there); errors still go to the console.
"$mvn_bin" -B -q --no-transfer-progress -Dstyle.color=never -f "$pom" \
  org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
  -DincludeScope=runtime \
  -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2

if ! compgen -G "$tmp/kafka_2.13-$version.jar" >/dev/null; then
  echo "fetch.sh: mvn finished but kafka_2.13-$version.jar is missing in $tmp" >&2
  exit 4
fi

echo "$want" >"$tmp/.complete"
rm -rf "$libs.old"
[[ -d "$libs" ]] && mv "$libs" "$libs.old"
mv "$tmp" "$libs"
trap - EXIT
rm -rf "$libs.old"
echo "fetch.sh: $(ls "$libs"/*.jar | wc -l) jars in $libs" >&2
echo "$libs"
