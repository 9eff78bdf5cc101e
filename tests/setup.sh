#!/usr/bin/env bash
# Installs and starts what the end-to-end tests need that cargo does not bring. Idempotent: safe to run
# before every test run. The file → Loki tests need nothing beyond the Rust toolchain; each later source
# adds a delimited section below.
set -euo pipefail

# Installs the Debian packages named that are missing (apt-get update once, only if needed).
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "tests/setup.sh: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# --- journal source (tests/journal.rs) ---
# Each test starts its own systemd-journald in a private mount namespace (unshare, nsenter: util-linux),
# writes with systemd-cat/logger, and makes fixture files with systemd-journal-remote and xz.
apt_install systemd libsystemd0 systemd-journal-remote util-linux xz-utils

# --- syslog source (tests/syslog_source.rs) ---
# logger (util-linux, above) as a client, and an rsyslogd of each test's own (started by the test, on a
# socket in its temp dir; the package starts no daemon where systemd does not run) as a relay.
apt_install rsyslog

# ---- Docker source (tests/docker_source.rs, benches/docker.rs) ----------------------------------------
# A tiny image made without any registry: Debian's static busybox in an otherwise empty rootfs, imported
# as logferry-test-busybox:latest. Skipped (the Docker tests then skip too) where no engine answers.
DOCKER_TEST_IMAGE=logferry-test-busybox:latest
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    # tests/container.rs: the sidecar image's script strips the binary (objcopy), and the example
    # compose file is checked with docker-compose.
    apt_install binutils docker-compose
    if ! docker image inspect "$DOCKER_TEST_IMAGE" >/dev/null 2>&1; then
        apt_install busybox-static
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
    echo "tests/setup.sh: no Docker engine answers; the Docker source tests will fail"
fi

# ---- Prometheus (tests/prometheus.rs) -----------------------------------------------------------------
# A real Prometheus scrapes the agent's /metrics, and promtool lints it. Each test starts its own
# `prometheus` process; the package's service must not start or be enabled: policy-rc.d refuses the
# start during the install, and the unit is disabled afterwards.
if ! dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q "install ok installed"; then
    policy=/usr/sbin/policy-rc.d
    ours=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        ours=1
    fi
    status=0
    apt_install prometheus || status=$?
    [ -z "$ours" ] || rm -f "$policy"
    [ "$status" -eq 0 ] || exit "$status"
    systemctl disable prometheus >/dev/null 2>&1 || true
fi

# ---- OTLP source (tests/otlp.rs) ----------------------------------------------------------------------
# The real OpenTelemetry Python SDK and its OTLP exporters (HTTP and gRPC) as the clients, from PyPI,
# in a virtualenv of their own, cached across runs (rebuilt only when the pinned versions change).
OTEL_VERSION=1.45.2
OTEL_VENV="${LOGFERRY_TEST_CACHE:-$HOME/.cache/logferry-tests}/otel-venv-$OTEL_VERSION"
if [ ! -x "$OTEL_VENV/bin/python" ] || ! "$OTEL_VENV/bin/python" -c 'import opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http' 2>/dev/null; then
    rm -rf "$OTEL_VENV"
    python3 -m venv "$OTEL_VENV"
    "$OTEL_VENV/bin/pip" install -q --disable-pip-version-check \
        "opentelemetry-sdk==$OTEL_VERSION" \
        "opentelemetry-exporter-otlp-proto-http==$OTEL_VERSION" \
        "opentelemetry-exporter-otlp-proto-grpc==$OTEL_VERSION"
    echo "tests/setup.sh: installed the OpenTelemetry SDK in $OTEL_VENV"
fi
# The tests find it by this name (tests/common/otel.rs).
ln -sfn "$OTEL_VENV" "$(dirname "$OTEL_VENV")/otel-venv"

echo "tests/setup.sh: ready"
