#!/usr/bin/env bash
# Builds the logferry sidecar image (examples/container/Dockerfile) FROM scratch, without a registry.
#
#   examples/container/build-image.sh [--binary PATH] [--tag NAME] [--context DIR]
#
#   --binary   the logferry binary to put in (default: target/release/logferry; build it with
#              `cargo build --release`). It is copied without its debug info.
#   --tag      the image name (default: logferry:latest)
#   --context  assemble the build context in DIR and keep it there (default: a temp dir, removed)
#
# The context holds a root file system made of this machine's files: the binary, every shared library
# `ldd` lists for it, libsystemd.so.0 and what it links (the journal source dlopens it; without it a
# journal job stops the agent at start), the compression libraries journal files may need, an
# ld.so.cache for them, /etc/passwd and /etc/group with the user `logferry` (10001), and /tmp.
# No CA bundle: the HTTP client carries its own root certificates (webpki-roots).
set -euo pipefail
trap 'echo "build-image.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

here=$(cd "$(dirname "$0")" && pwd)
binary="$here/../../target/release/logferry"
tag=logferry:latest
context=""
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --tag) tag=$2; shift 2 ;;
        --context) context=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$binary" ] || { echo "build-image.sh: no binary at $binary (cargo build --release?)" >&2; exit 1; }

if [ -z "$context" ]; then
    context=$(mktemp -d)
    trap 'rm -rf "$context"' EXIT
fi
rootfs="$context/rootfs"
rm -rf "$rootfs" "$context/state"
mkdir -p "$rootfs/usr/bin" "$rootfs/etc/logferry" "$rootfs/tmp" "$context/state"
chmod 1777 "$rootfs/tmp"

# The binary without debug info (the release profile keeps line tables for backtraces; an image
# does not need them, and a test build's debug info is hundreds of MB).
objcopy --strip-debug "$binary" "$rootfs/usr/bin/logferry" 2>/dev/null || cp "$binary" "$rootfs/usr/bin/logferry"

# Copies a file to the same path in the rootfs, following symlinks (the copy has the link's name,
# which is the name the loader looks for).
copy_lib() {
    mkdir -p "$rootfs$(dirname "$1")"
    cp -L "$1" "$rootfs$1"
}

# Every library `ldd` resolves for $1, and the program interpreter.
copy_linked() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u |
        while read -r lib; do copy_lib "$lib"; done
}

copy_linked "$rootfs/usr/bin/logferry"

# libsystemd: LOGFERRY_LIBSYSTEMD if set (the agent honours it too), else the one ldconfig knows.
# (awk reads all of ldconfig's output: quitting at the first match would kill ldconfig with SIGPIPE at
# random, and pipefail would end this script without a word.)
libsystemd=${LOGFERRY_LIBSYSTEMD:-$(ldconfig -p | awk '$1 == "libsystemd.so.0" && /x86-64|x86_64/ && !found { print $NF; found = 1 }')}
if [ -z "$libsystemd" ] || [ ! -e "$libsystemd" ]; then
    echo "build-image.sh: libsystemd.so.0 not found (apt-get install libsystemd0): journal jobs would fail in the image" >&2
    exit 1
fi
copy_lib "$libsystemd"
copy_linked "$libsystemd"
# Newer libsystemd dlopens its compression libraries instead of linking them; journal files written
# with xz, lz4 or zstd need them either way.
for name in liblzma.so.5 liblz4.so.1 libzstd.so.1; do
    lib=$(ldconfig -p | awk -v n="$name" '$1 == n && /x86-64|x86_64/ && !found { print $NF; found = 1 }')
    if [ -n "$lib" ]; then
        copy_lib "$lib"
        copy_linked "$lib"
    fi
done

# The loader's cache, so dlopen("libsystemd.so.0") finds it wherever this distribution keeps libraries.
find "$rootfs" -name '*.so*' -printf '%h\n' | sort -u | sed "s|^$rootfs||" > "$rootfs/etc/ld.so.conf"
ldconfig -r "$rootfs"

cat > "$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/:/sbin/nologin
logferry:x:10001:10001:logferry:/var/lib/logferry:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat > "$rootfs/etc/group" <<'GROUP'
root:x:0:
logferry:x:10001:
nogroup:x:65534:
GROUP
# glibc resolves names with its built-in files and dns modules; say in which order.
echo 'hosts: files dns' > "$rootfs/etc/nsswitch.conf"

cp "$here/Dockerfile" "$context/Dockerfile"
# The legacy builder is enough (BuildKit needs the buildx plugin, which may be missing). Its output,
# a warning that it is deprecated, is shown only if the build fails.
if ! output=$(DOCKER_BUILDKIT=0 docker build --quiet --tag "$tag" "$context" 2>&1); then
    echo "$output" >&2
    exit 1
fi
echo "build-image.sh: built $tag"
