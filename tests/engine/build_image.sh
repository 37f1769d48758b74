#!/usr/bin/env bash
# Build a stand-in for rayproject/ray:<ray>-py312-cpu without a registry (REFERENCE.md section 10):
# a Debian minbase root, this machine's CPython 3.12 at /home/ray/anaconda3 (where the real images keep
# theirs) with its prefix relocated, ray[default] installed into it, user ray (1000:100), `docker import`.
#   build_image.sh IMAGE_TAG CACHE_DIR
# The root's tarball is kept as CACHE_DIR/<tag>.tar: with it, a later build is one `docker import`.
set -euo pipefail

TAG="$1"
CACHE="$2"
RAY_VERSION="${RAY_VERSION:-2.49.2}"
PY_MINOR=3.12
DOCKER=/usr/bin/docker
PREFIX=/home/ray/anaconda3
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TARBALL="$CACHE/$(echo "$TAG" | tr '/:' '__').tar"
mkdir -p "$CACHE"

say() { echo "build_image: $*" >&2; }
die() { echo "build_image: $*" >&2; exit 1; }

import_tarball() {
    # The real images run as ray in /home/ray with their Python first on PATH.
    # GRPC_ENABLE_FORK_SUPPORT=0: the image's grpcio is today's, not the one the real images pin, and
    # with it the Ray Client server crashes on a fresh head's first client (gRPC fork handlers:
    # ray-project/ray#63202, as tests/ray_cluster.py starts its heads). The real images do not need it.
    # RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT (ray/dashboard/consts.py, 30 s by default): on a
    # loaded 2-core test machine the dashboard's MetricsHead took longer and the dashboard died at start.
    "$DOCKER" import \
        -c "ENV PATH=$PREFIX/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        -c "ENV HOME=/home/ray" \
        -c "ENV GRPC_ENABLE_FORK_SUPPORT=0" \
        -c "ENV RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT=300" \
        -c "LABEL raydoctor.standin=${STANDIN_VERSION:-2}" \
        -c "USER ray" -c "WORKDIR /home/ray" -c 'CMD ["bash"]' \
        "$TARBALL" "$TAG" >/dev/null
}

if [ -s "$TARBALL" ]; then
    say "importing $TAG from $TARBALL"
    import_tarball
    exit 0
fi

# The interpreter to copy: pyenv's 3.12 (REFERENCE.md section 7), else any python3.12 on PATH.
SRC=""
for cand in "$HOME"/.pyenv/versions/3.12.*/bin/python3.12; do [ -x "$cand" ] && SRC="$cand"; done
[ -n "$SRC" ] || SRC="$(command -v python3.12 || true)"
[ -n "$SRC" ] || die "no CPython 3.12 here to copy into the image"
OLD="$("$SRC" -c 'import sys; print(sys.base_prefix)')"
UV="$(command -v uv || true)"
[ -n "$UV" ] || UV="$(dirname "$0")/../../.venv/bin/uv"
[ -x "$UV" ] || die "uv is needed (pip install uv)"

ROOT="$(mktemp -d "$CACHE/root.XXXXXX")"
trap 'rm -rf "$ROOT"' EXIT
start=$SECONDS
say "debootstrap bookworm minbase into $ROOT"
debootstrap --variant=minbase \
    --include=libssl3,libsqlite3-0,libreadline8,libnsl2,libtirpc3,ca-certificates,procps,libffi8,zlib1g,libbz2-1.0,liblzma5,libncursesw6,libuuid1 \
    bookworm "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || { tail -5 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
say "debootstrap done in $((SECONDS - start)) s"

say "copying $OLD to $PREFIX"
mkdir -p "$ROOT/home/ray"
cp -a "$OLD" "$ROOT$PREFIX"
rm -rf "$ROOT$PREFIX/lib/python$PY_MINOR/test" "$ROOT$PREFIX/lib/python$PY_MINOR/idlelib/idle_test"
echo "$PREFIX/lib" >"$ROOT/etc/ld.so.conf.d/ray-python.conf"
chroot "$ROOT" /sbin/ldconfig

# Relocate: sysconfig's paths (virtualenv reads LIBDIR: Ray's runtime_env pip plugin makes one),
# the config Makefile, pkg-config files and every script's shebang.
relocate() { # FROM TO
    grep -rlI --null -F "$1" "$ROOT$PREFIX/bin" "$ROOT$PREFIX/lib/pkgconfig" \
        "$ROOT$PREFIX/lib/python$PY_MINOR"/_sysconfigdata*.py "$ROOT$PREFIX/lib/python$PY_MINOR"/config-* \
        2>/dev/null | xargs -0 -r sed -i "s#$1#$2#g"
}
relocate "$OLD" "$PREFIX"

say "installing ray[default]==$RAY_VERSION"
"$UV" pip install -q --python "$ROOT$PREFIX/bin/python$PY_MINOR" --break-system-packages \
    "ray[default]==$RAY_VERSION" || die "uv pip install ray[default]==$RAY_VERSION failed"
# uv wrote the host path of the copy into the new scripts' shebangs.
relocate "$ROOT$PREFIX" "$PREFIX"

# The real images' user: ray, uid 1000, gid 100 (users), owning its home.
echo "ray:x:1000:100:ray:/home/ray:/bin/bash" >>"$ROOT/etc/passwd"
echo "ray:*:19000:0:99999:7:::" >>"$ROOT/etc/shadow"
chown -R 1000:100 "$ROOT/home/ray"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*

say "packing the root to $TARBALL"
tar -C "$ROOT" --numeric-owner -cf "$TARBALL.part" .
mv "$TARBALL.part" "$TARBALL"
import_tarball
say "built $TAG in $((SECONDS - start)) s"
