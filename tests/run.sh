#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: installs what the tests need, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo test --locked --all-targets
