#!/usr/bin/env bash
# Installs and starts what the end-to-end tests need that cargo does not bring. Idempotent: safe to run
# before every test run. The file → Loki tests need nothing beyond the Rust toolchain; each later source
# adds a delimited section below.
set -euo pipefail

# ---- Docker source (tests/docker_source.rs, benches/docker.rs) ----------------------------------------
# A tiny image made without any registry: Debian's static busybox in an otherwise empty rootfs, imported
# as logferry-test-busybox:latest. Skipped (the Docker tests then skip too) where no engine answers.
DOCKER_TEST_IMAGE=logferry-test-busybox:latest
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    if ! docker image inspect "$DOCKER_TEST_IMAGE" >/dev/null 2>&1; then
        if [ ! -x /bin/busybox ]; then
            apt-get install -y busybox-static >/dev/null 2>&1 ||
                { apt-get update >/dev/null && apt-get install -y busybox-static >/dev/null; }
        fi
        rootfs=$(mktemp -d)
        trap 'rm -rf "$rootfs"' EXIT
        mkdir -p "$rootfs/bin" "$rootfs/tmp"
        cp /bin/busybox "$rootfs/bin/busybox"
        for applet in $(/bin/busybox --list); do
            [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
        done
        tar -C "$rootfs" -c . | docker import \
            --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$DOCKER_TEST_IMAGE" >/dev/null
        echo "tests/setup.sh: built $DOCKER_TEST_IMAGE"
    fi
else
    echo "tests/setup.sh: no Docker engine answers; the Docker source tests will be skipped"
fi
