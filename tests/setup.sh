#!/usr/bin/env bash
# Installs and starts what the end-to-end tests need that cargo does not bring. Idempotent: safe to run
# before every test run. The file → Loki tests need nothing beyond the Rust toolchain; later sources
# (Docker, journal) add their steps here.
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
echo "tests/setup.sh: ready"
