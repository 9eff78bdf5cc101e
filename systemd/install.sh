#!/bin/sh
# Installs logferry as a systemd service: the binary, the unit, a config and an environment file, and
# the `logferry` system user. Run as root from a checkout (after `cargo build --release`):
#
#   sudo systemd/install.sh [--binary PATH] [--config FILE] [--loki-url URL] [--no-start]
#
#   --binary    the logferry binary (default: target/release/logferry)
#   --config    the config to install as /etc/logferry/config.yaml when there is none yet
#               (default: examples/bare-metal.yaml); an existing config is never overwritten
#   --loki-url  written as LOKI_URL to /etc/logferry/logferry.env when that file is new
#   --no-start  install only; do not enable or start the service
#
# DESTDIR=/some/root installs into that tree instead (for packaging and tests): no user is created
# and systemctl is not called. Running it again upgrades the binary and unit and keeps the config.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
binary=$top/target/release/logferry
config=$top/examples/bare-metal.yaml
loki_url=
start=yes
while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=$2; shift 2 ;;
        --config) config=$2; shift 2 ;;
        --loki-url) loki_url=$2; shift 2 ;;
        --no-start) start=no; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
root=${DESTDIR:-}

[ -x "$binary" ] || { echo "install.sh: no binary at $binary (cargo build --release, or --binary)" >&2; exit 1; }
[ -f "$config" ] || { echo "install.sh: no config at $config" >&2; exit 1; }
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (or set DESTDIR)" >&2
    exit 1
fi

install -d "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/logferry"
install -m 0755 "$binary" "$root/usr/local/bin/logferry"
install -m 0644 "$here/logferry.service" "$root/etc/systemd/system/logferry.service"

# Docker jobs read the socket as the `docker` group; only a host that has the group gets it, since a
# unit naming a missing group does not start.
dropin=$root/etc/systemd/system/logferry.service.d
if getent group docker >/dev/null 2>&1; then
    install -d "$dropin"
    printf '# Written by install.sh: this host has Docker.\n[Service]\nSupplementaryGroups=docker\n' \
        > "$dropin/docker.conf"
fi

if [ -z "$root" ] && ! getent passwd logferry >/dev/null; then
    nologin=$(command -v nologin || echo /usr/sbin/nologin)
    useradd --system --user-group --no-create-home --home-dir /var/lib/logferry \
        --shell "$nologin" --comment "logferry log shipping agent" logferry
fi

# The config may hold secrets: readable by root and the service's group only.
group=logferry
[ -n "$root" ] && group=$(id -g)
if [ ! -e "$root/etc/logferry/config.yaml" ]; then
    install -m 0640 -g "$group" "$config" "$root/etc/logferry/config.yaml"
else
    echo "install.sh: keeping the existing /etc/logferry/config.yaml"
fi
if [ ! -e "$root/etc/logferry/logferry.env" ]; then
    umask 027
    {
        echo "# Environment of logferry.service: \${VAR} in config.yaml is expanded from here."
        echo "LOKI_URL=${loki_url:-http://localhost:3100/loki/api/v1/push}"
        echo "HOSTNAME=$(hostname)"
    } > "$root/etc/logferry/logferry.env"
    chgrp "$group" "$root/etc/logferry/logferry.env"
fi

# Refuse to (re)start on a config the agent would refuse.
set -a
# shellcheck disable=SC1091
. "$root/etc/logferry/logferry.env"
set +a
"$root/usr/local/bin/logferry" check-config "$root/etc/logferry/config.yaml" -config.expand-env=true

if [ -z "$root" ]; then
    systemctl daemon-reload
    if [ "$start" = yes ]; then
        systemctl enable logferry.service
        systemctl restart logferry.service
        systemctl --no-pager status logferry.service || true
    fi
fi
echo "install.sh: logferry installed${root:+ under $root}"
