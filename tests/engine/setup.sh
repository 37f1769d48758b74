#!/usr/bin/env bash
# A real Docker engine for the tests (issue 19): `setup.sh up` makes one answer, `setup.sh down` stops
# the engine that `up` started (and nothing else).
#
#   up    installs Debian's docker.io and docker-compose (and debootstrap) where missing, starts dockerd
#         when no engine answers (its pid in $STATE/dockerd.pid), and builds the stand-in images once:
#           rayproject/ray:2.49.2.7b0af3-py312-cpu   the tutorial's image (tests/engine/build_image.sh)
#           raydoctor-test/ray-nossl:2.49.2          the same without libssl3 (the dashboard dies at start)
#           raydoctor-test/ray-skewed:2.49.2         the same saying Ray 2.49.1 (a worker the head refuses)
#           rayproject/ray:2.60.0-py312-cpu          Ray 2.60 (token auth: tests/engine/token-ray-cluster.yaml);
#                                                    cold, 53 s here (debootstrap 40 s; ray 2.60.0 from uv's
#                                                    cache), then one `docker import` of its tarball
#         An image `docker image inspect` finds is not built again; the root filesystem's tarball is kept
#         under $CACHE/images so that an emptied engine imports it again in seconds.
#   down  stops the dockerd that `up` started; an engine that was already running is left alone.
#
# It fails (exit 1, saying why) when the engine cannot start: the live tests need it and must not skip.
# No registry is used: nothing is pulled. Run as root (dockerd, apt-get, debootstrap need it).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${RAYDOCTOR_TEST_CACHE:-$HOME/.cache/raydoctor-tests}"
STATE="$CACHE/engine"
RAY_IMAGE="rayproject/ray:2.49.2.7b0af3-py312-cpu"
NOSSL_IMAGE="raydoctor-test/ray-nossl:2.49.2"
SKEWED_IMAGE="raydoctor-test/ray-skewed:2.49.2"
TOKEN_IMAGE="rayproject/ray:2.60.0-py312-cpu"
mkdir -p "$STATE"

say() { echo "engine: $*" >&2; }
die() { echo "engine: $*" >&2; exit 1; }

# The docker CLI Debian installs (/usr/bin/docker); another docker earlier on PATH may lack a plugin we
# do not need, so every command here names this one.
DOCKER=/usr/bin/docker

answers() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_packages() {
    local want=()
    [ -x /usr/sbin/dockerd ] || want+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || want+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || want+=(debootstrap)
    [ "${#want[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "needs root to install ${want[*]} (apt-get)"
    say "installing ${want[*]} from Debian"
    apt-get update -q >"$STATE/apt.log" 2>&1 || { tail -5 "$STATE/apt.log" >&2; die "apt-get update failed"; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}" >>"$STATE/apt.log" 2>&1 \
        || { tail -5 "$STATE/apt.log" >&2; die "apt-get install ${want[*]} failed"; }
}

start_engine() {
    answers && return 0
    [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and starting dockerd needs root"
    say "starting dockerd (log: $STATE/dockerd.log)"
    # setsid: the engine outlives this script (and CI's shell) until `down`.
    setsid /usr/sbin/dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
    echo $! >"$STATE/dockerd.pid"
    for _ in $(seq 1 60); do
        answers && return 0
        kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null || break
        sleep 0.5
    done
    tail -20 "$STATE/dockerd.log" >&2 || true
    die "dockerd did not answer within 30 s"
}

stop_engine() {
    local pidfile="$STATE/dockerd.pid"
    [ -f "$pidfile" ] || { say "no dockerd started by setup.sh: nothing to stop"; return 0; }
    local pid
    pid="$(cat "$pidfile")"
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "dockerd" ]; then
        kill "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && die "dockerd ($pid) did not stop within 30 s"
        say "stopped dockerd ($pid)"
    fi
    rm -f "$pidfile"
}

# Bumped when the stand-ins change: an image of another version is built again (variants with it).
export STANDIN_VERSION=2
have_image() {
    [ "$("$DOCKER" image inspect --format '{{index .Config.Labels "raydoctor.standin"}}' "$1" 2>/dev/null)" = "$STANDIN_VERSION" ]
}

derive() { # TAG SHELL_COMMAND: the stand-in with one command run as root on top (no registry: FROM is local)
    have_image "$1" && return 0
    local ctx
    ctx="$(mktemp -d)"
    printf 'FROM %s\nUSER root\nRUN %s\nUSER ray\n' "$RAY_IMAGE" "$2" >"$ctx/Dockerfile"
    "$DOCKER" image rm -f "$1" >/dev/null 2>&1 || true
    DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$1" "$ctx" >/dev/null || { rm -rf "$ctx"; die "building $1 failed"; }
    rm -rf "$ctx"
}

standin() { # TAG RAY_VERSION: a stand-in root built once (build_image.sh), its tarball cached under $CACHE/images
    if ! have_image "$1"; then
        (
            flock 9
            have_image "$1" || RAY_VERSION="$2" "$HERE/build_image.sh" "$1" "$CACHE/images"
        ) 9>"$STATE/build.lock"
    fi
    have_image "$1" || die "the stand-in image $1 was not built"
}

build_images() {
    standin "$RAY_IMAGE" 2.49.2
    # Ray 2.60: token authentication (RAY_AUTH_MODE=token) for tests/test_compose_token_real.py.
    standin "$TOKEN_IMAGE" 2.60.0
    # The tutorial's image with OpenSSL's libraries removed: the dashboard's aiohttp needs
    # libssl.so.3 and dies at start while GCS and the client server run (REFERENCE.md section 10).
    derive "$NOSSL_IMAGE" 'rm -f /usr/lib/x86_64-linux-gnu/libssl.so.3 /usr/lib/x86_64-linux-gnu/libcrypto.so.3 && ldconfig'
    # The tutorial's image whose Ray says 2.49.1: a worker from it is refused by a 2.49.2 head
    # (ray/_private/utils.py::check_version_info compares ray.__version__ with the cluster's).
    derive "$SKEWED_IMAGE" "sed -i 's/^version = \"2.49.2\"/version = \"2.49.1\"/' /home/ray/anaconda3/lib/python3.12/site-packages/ray/_version.py"
}

case "${1:-up}" in
up)
    start=$SECONDS
    install_packages
    start_engine
    build_images
    say "ready in $((SECONDS - start)) s: $("$DOCKER" version --format 'engine {{.Server.Version}}'), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'), NCPU $("$DOCKER" info --format '{{.NCPU}}')"
    ;;
down) stop_engine ;;
*) die "usage: $0 [up|down]" ;;
esac
