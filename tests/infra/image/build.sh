#!/usr/bin/env bash
# `make image`: the queue manager's image from the Containerfile, without a Docker daemon or a
# remote registry.
#   1. a base root filesystem from Debian's own packages (mmdebstrap: bookworm, python3,
#      python3-venv, ca-certificates), imported as localhost/streamforge/python-bookworm:<key>;
#      rebuilt only when its recipe changes
#   2. buildah bud of the Containerfile on that base (layers cached: a code change rebuilds
#      only the project's own layers)
#   3. the image as an OCI layout and a docker-archive in .local/image/
#   4. a push to a local registry (distribution, tests/infra/dataplane/build.sh registry) and a
#      pull back by digest into an empty store; the digest is written to .local/image/digest,
#      the image's id to .local/image/ref (the tests run exactly that image, whatever another
#      clone on this machine built since), and the image is tagged :dev
# Needs (Debian packages): mmdebstrap buildah podman skopeo runc; .ci/run installs them.
# Docker or podman users do not need this script: `podman build .` or `docker build -f Containerfile .`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
out="$repo/.local/image"
NAME=streamforge/queue-manager
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
# Nothing a server reads: documentation, manual pages, translations.
EXCLUDES=('/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' '/usr/share/locale/*' '/usr/share/lintian/*')

for tool in mmdebstrap buildah podman skopeo; do
  command -v "$tool" >/dev/null || {
    echo "image: '$tool' not found (apt-get install mmdebstrap buildah podman skopeo runc)" >&2; exit 1; }
done
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
t0=$SECONDS

# 1. the base
dpkgopts=()
for e in "${EXCLUDES[@]}"; do dpkgopts+=(--dpkgopt="path-exclude=$e"); done
# copyright files stay: they are what the packages' licences require
dpkgopts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
# the month too: a new base (with that month's security updates) at least monthly
base_recipe="$SUITE $PACKAGES ${dpkgopts[*]} $(mmdebstrap --version) $(date -u +%Y-%m)"
base="localhost/streamforge/python-$SUITE:$(sha256sum <<<"$base_recipe" | cut -c1-12)"
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  tar="$(mktemp -d)/rootfs.tar"
  mmdebstrap --variant=essential --include="$PACKAGES" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${dpkgopts[@]}" \
    --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/* "$1"/var/lib/apt/lists/*' \
    "$SUITE" "$tar" > "$out/mmdebstrap.log" 2>&1 || { tail -30 "$out/mmdebstrap.log" >&2; exit 1; }
  ctr="$(buildah from scratch)"
  buildah add --quiet "$ctr" "$tar" /
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /usr/bin/python3 "$ctr"
  buildah commit --quiet --rm "$ctr" "$base" >/dev/null
  rm -rf "$(dirname "$tar")"
  echo "image: base $base from Debian packages in $((SECONDS - t0))s"
fi

# 2. the image
revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
[[ -z "$(git -C "$repo" status --porcelain -- Containerfile pyproject.toml README.md functions shared 2>/dev/null)" ]] \
  || revision="$revision-dirty"
created="$(git -C "$repo" log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml")"
secret=()
# a TLS-intercepting proxy's CA bundle for pip, mounted for the install steps only
[[ -s /etc/ssl/certs/ca-certificates.crt ]] && secret=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
t1=$SECONDS
buildah bud --quiet --layers --network host "${secret[@]}" \
  --build-arg BASE="$base" --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" --build-arg CREATED="$created" \
  --iidfile "$out/iid" -f "$repo/Containerfile" "$repo" >/dev/null
id="$(cat "$out/iid")"
echo "image: built $id in $((SECONDS - t1))s"

# 3. OCI layout and docker-archive
rm -rf "$out/oci" "$out/queue-manager.tar"
buildah push --quiet "$id" "oci:$out/oci:$version"
buildah push --quiet "$id" "docker-archive:$out/queue-manager.tar:$NAME:$version"

# 4. through a registry and back, by digest
registry="$(bash "$repo/tests/infra/dataplane/build.sh" --print-dir)/bin/registry"
[[ -x "$registry" ]] || bash "$repo/tests/infra/dataplane/build.sh" registry >/dev/null
work="$(mktemp -d)"
reg_pid=""
trap '[[ -n "$reg_pid" ]] && kill "$reg_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YAML
OTEL_TRACES_EXPORTER=none "$registry" serve "$work/config.yml" > "$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || { echo "image: registry did not start:" >&2; cat "$work/registry.log" >&2; exit 1; }
remote="127.0.0.1:$port/$NAME"
skopeo copy --quiet --dest-tls-verify=false --digestfile "$work/digest" \
  "oci:$out/oci:$version" "docker://$remote:$version"
digest="$(cat "$work/digest")"
# an empty store: what a node without the image does
podman --root "$work/store" --runroot "$work/run" pull --quiet \
  --tls-verify=false "$remote@$digest" >/dev/null
pulled="$(podman --root "$work/store" --runroot "$work/run" image inspect \
  --format '{{.Digest}}' "$remote@$digest")"
[[ "$pulled" == "$digest" ]] || { echo "image: pulled $pulled, pushed $digest" >&2; exit 1; }
podman tag "$id" "localhost/$NAME:dev"
echo "$digest" > "$out/digest"
echo "$id" > "$out/ref"
size="$(podman image inspect --format '{{.Size}}' "$id")"
echo "image: $id (localhost/$NAME:dev) $digest, $((size / 1000000)) MB, pushed and pulled back by digest; $((SECONDS - t0))s in all"
