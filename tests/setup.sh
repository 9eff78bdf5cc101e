#!/usr/bin/env bash
# Installs and starts what the end-to-end tests need that cargo does not bring. Idempotent: safe to run
# before every test run. The file → Loki tests need nothing beyond the Rust toolchain; later sources
# (Docker, journal) add their steps here.
set -euo pipefail
echo "tests/setup.sh: nothing to install for the current suite"
