#!/usr/bin/env bash
# Build the test control plane from source through the Go module proxy:
#   kube-apiserver, kube-controller-manager, kube-scheduler  (tests/infra/k8s/go.mod)
#   etcd                                                       (tests/infra/etcd/go.mod)
#   kwok                                                       (tests/infra/kwok/go.mod)
# into ${XDG_CACHE_HOME:-$HOME/.cache}/streamforge-qm/k8s/<k8s-version>/bin/.
#
# Idempotent: a binary is rebuilt only when it is missing or its stamp (module
# version, Go version, build flags) changed. Safe to run concurrently (flock).
#
# Usage: tests/infra/k8s/build.sh [--force] [--check] [--print-bin-dir]
#   --force           rebuild everything
#   --check           build nothing; exit 0 if every binary is up to date, else
#                     list the missing/outdated ones and exit 1
#   --print-bin-dir   print the bin directory and exit (builds nothing)
# Env: GO (go binary, default: go), BUILD_NICE (nice level, default 10),
#      STREAMFORGE_QM_CACHE (cache root, default $XDG_CACHE_HOME/streamforge-qm)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
infra="$(cd "$here/.." && pwd)"
GO="${GO:-go}"

force=0
print_only=0
check_only=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --check) check_only=1 ;;
        --print-bin-dir) print_only=1 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

# Version of the module `mod` required by the go.mod file `gomod`.
mod_version() {
    awk -v m="$1" '($1 == m || ($1 == "require" && $2 == m)) {
        v = ($1 == "require") ? $3 : $2
        if (v ~ /^v[0-9]/) { print v; exit }
    }' "$2"
}

k8s_version="$(mod_version k8s.io/kubernetes "$here/go.mod")"
etcd_version="$(mod_version go.etcd.io/etcd/server/v3 "$infra/etcd/go.mod")"
kwok_version="$(mod_version sigs.k8s.io/kwok "$infra/kwok/go.mod")"
for v in k8s_version etcd_version kwok_version; do
    if [[ -z "${!v}" ]]; then
        echo "build.sh: cannot read $v from the go.mod files" >&2
        exit 1
    fi
done

cache_root="${STREAMFORGE_QM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamforge-qm}"
bin="$cache_root/k8s/$k8s_version/bin"
if [[ $print_only == 1 ]]; then
    echo "$bin"
    exit 0
fi

if command -v "$GO" >/dev/null 2>&1; then
    go_version="$("$GO" env GOVERSION)"
elif [[ $check_only == 1 ]]; then
    go_version="" # no toolchain here: --check only looks at the stamps
else
    echo "build.sh: '$GO' not found; a Go toolchain >= the go directive in $here/go.mod is needed" >&2
    exit 1
fi

if [[ $check_only == 0 ]]; then
    mkdir -p "$bin"
    # One build at a time per cache directory (parallel test runners, CI steps).
    exec 9>"$bin/.lock"
    if ! flock -n 9; then
        echo "build.sh: another build holds $bin/.lock, waiting ..." >&2
        flock 9
    fi
fi

# k8s version stamping, as hack/lib/version.sh does, so that /version reports
# the real release (components compare versions for compatibility checks).
if [[ ! "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\. ]]; then
    echo "build.sh: unexpected k8s version $k8s_version" >&2
    exit 1
fi
k8s_major="${BASH_REMATCH[1]}"
k8s_minor="${BASH_REMATCH[2]}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$k8s_major"
    k8s_ldflags+=" -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
    k8s_ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
plain_ldflags="-s -w"

export CGO_ENABLED=0
# The go.sum files are committed: never rewrite them during a build.
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
nice_cmd=(nice -n "${BUILD_NICE:-10}")

built=()
failed=0
total_start=$SECONDS

# What a binary is built from. The Go toolchain version is recorded in the
# stamp's second line but does not trigger a rebuild by itself.
stamp_of() { # name module version ldflags
    printf '%s@%s %s CGO_ENABLED=0 -trimpath ldflags=[%s]\n' "$2" "$3" "$1" "$4"
}

up_to_date() { # name stamp
    [[ $force == 0 && -x "$bin/$1" && -f "$bin/.$1.stamp" ]] &&
        [[ "$(head -n1 "$bin/.$1.stamp")" == "$2" ]]
}

outdated=()

# build_group <module dir> <ldflags> <module> <version> <name=package>...
# Builds the listed binaries that are missing/outdated in one `go build`
# (they share most packages), into a temp dir, then moves them into place.
build_group() {
    local dir="$1" ldflags="$2" module="$3" version="$4"
    shift 4
    local names=() pkgs=() spec name pkg stamp
    for spec in "$@"; do
        name="${spec%%=*}"
        pkg="${spec#*=}"
        stamp="$(stamp_of "$name" "$module" "$version" "$ldflags")"
        if up_to_date "$name" "$stamp"; then
            echo "up to date: $name ($module@$version)"
        else
            names+=("$name")
            pkgs+=("$pkg")
        fi
    done
    [[ ${#names[@]} -eq 0 ]] && return 0
    if [[ $check_only == 1 ]]; then
        outdated+=("${names[@]}")
        return 0
    fi

    local tmp start secs
    tmp="$(mktemp -d "$bin/.build.XXXXXX")"
    start=$SECONDS
    echo "building ${names[*]} ($module@$version, $go_version) ..."
    if ! (cd "$dir" && "${nice_cmd[@]}" "$GO" build -ldflags="$ldflags" -o "$tmp/" "${pkgs[@]}"); then
        echo "build.sh: FAILED to build ${names[*]} ($module@$version)" >&2
        rm -rf "$tmp"
        failed=1
        return 0
    fi
    secs=$((SECONDS - start))
    local i
    for i in "${!names[@]}"; do
        name="${names[$i]}"
        pkg="${pkgs[$i]}"
        # go build -o dir/ names each binary after the last element of its
        # package path, skipping a major-version suffix (.../server/v3 -> server).
        local base="${pkg##*/}"
        if [[ "$base" =~ ^v[0-9]+$ && "$pkg" == */*/* ]]; then
            base="${pkg%/*}"
            base="${base##*/}"
        fi
        local out="$tmp/$base"
        if [[ ! -x "$out" ]]; then
            echo "build.sh: go build produced no $out" >&2
            failed=1
            continue
        fi
        mv -f "$out" "$bin/$name"
        {
            stamp_of "$name" "$module" "$version" "$ldflags"
            echo "built with $go_version"
        } > "$bin/.$name.stamp"
        built+=("$name")
        printf 'built %-24s %6s  (%s@%s)\n' "$name" "$(du -h "$bin/$name" | cut -f1)" "$module" "$version"
    done
    rm -rf "$tmp"
    echo "  ${names[*]}: ${secs}s"
}

# etcd and kwok first: they are quick, and a failure there shows up early.
build_group "$infra/etcd" "$plain_ldflags" go.etcd.io/etcd/server/v3 "$etcd_version" \
    etcd=go.etcd.io/etcd/server/v3
build_group "$infra/kwok" "$plain_ldflags" sigs.k8s.io/kwok "$kwok_version" \
    kwok=sigs.k8s.io/kwok/cmd/kwok
build_group "$here" "$k8s_ldflags" k8s.io/kubernetes "$k8s_version" \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler

total=$((SECONDS - total_start))
if [[ $check_only == 1 ]]; then
    if [[ ${#outdated[@]} -gt 0 ]]; then
        echo "missing or outdated in $bin: ${outdated[*]}"
        exit 1
    fi
    echo "all binaries up to date in $bin"
    exit 0
fi
if [[ $failed != 0 ]]; then
    echo "build.sh: build FAILED after ${total}s (built: ${built[*]:-nothing})" >&2
    exit 1
fi
if [[ ${#built[@]} -eq 0 ]]; then
    echo "all binaries up to date in $bin"
else
    echo "built ${built[*]} in ${total}s into $bin"
fi
