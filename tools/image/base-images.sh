#!/usr/bin/env bash
# The Dockerfile's three base images, made on this machine with no container registry,
# for `make test-image` where python:3.12-slim-bookworm, ghcr.io/astral-sh/uv and
# node:20-bookworm-slim cannot be pulled. All are imported into the engine (`import`, not `pull`):
#
#   PYTHON_TAG  Debian SUITE minbase (debootstrap, from Debian's mirror), slimmed as
#               Debian's slim images are (no docs, man pages, locales, apt lists),
#               with the CPython 3.12 the project runs on copied into /usr/local as
#               the official python image lays it out: bin/python3.12, its stdlib
#               without tests, bytecode and symbols, libpython, and the Debian packages of
#               the libraries it links (found with ldd and dpkg -S here).
#   UV_TAG      FROM scratch with /uv and /uvx, as ghcr.io/astral-sh/uv is.
#   NODE_TAG    the same Debian minbase with the Node.js that builds the web page here
#               (`make install`) copied into /usr/local as the official node image lays
#               it out: bin/node, lib/node_modules/npm (and corepack), bin/npm and npx.
#               Only the Dockerfile's `ui` stage runs on it; nothing of it reaches the image.
#
# Usage: base-images.sh ENGINE PYTHON_TAG PYTHON UV_TAG UV NODE_TAG NODE
#   ENGINE  docker or podman;  PYTHON  a CPython 3.12 interpreter on this machine
#   (built for this Debian release);  UV  the uv binary to put in the uv image;
#   NODE  the node binary (built for this Debian release), with npm in ../lib/node_modules.
# Needs root (debootstrap, chroot) and strip. Environment: SUITE (bookworm), MIRROR.
set -euo pipefail

engine=$1 python_tag=$2 python=$3 uv_tag=$4 uv=$5 node_tag=$6 node=$7
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/palette-base.XXXXXX)
trap 'rm -rf "$work"' EXIT

say() { echo "base-images: $*" >&2; }

# ------------------------------------------------------------------ uv image
mkdir "$work/uv"
cp "$uv" "$work/uv/uv"
if [ -x "$(dirname "$uv")/uvx" ]; then cp "$(dirname "$uv")/uvx" "$work/uv/uvx"; fi
tar -C "$work/uv" -c . | "$engine" import --change 'CMD ["/uv"]' - "$uv_tag" >/dev/null
say "imported $uv_tag from $uv ($("$uv" --version))"

# ------------------------------------ the Debian of the python and node images
prefix=$("$python" -c 'import sys; print(sys.base_prefix)')
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$version" = 3.12 ] || { say "$python is Python $version, the image needs 3.12"; exit 1; }
stdlib="$prefix/lib/python$version"

# Node.js as it is installed here: bin/node, with npm (and corepack) in ../lib/node_modules.
node_modules="$(dirname "$(dirname "$(readlink -f "$node")")")/lib/node_modules"
[ -f "$node_modules/npm/bin/npm-cli.js" ] || { say "no npm in $node_modules (beside $node)"; exit 1; }
# The web page needs Node.js 20.19+ (services/gateway/ui/package.json, engines).
"$node" -e 'const [a, b] = process.versions.node.split(".").map(Number);
process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
    || { say "$node is Node.js $("$node" --version), the web page needs 20.19+"; exit 1; }

# The Debian packages of every library the interpreter, its extension modules and
# node link (tkinter's aside: the Dockerfile's python-files stage removes it).
libs=$(
    for f in "$prefix/bin/python$version" "$prefix"/lib/libpython*.so* "$stdlib"/lib-dynload/*.so "$node"; do
        case "$f" in *_tkinter*) continue ;; esac
        ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}'
    done | sort -u
)
packages=""
for lib in $libs; do
    case "$lib" in "$prefix"/*) continue ;; esac
    real=$(readlink -f "$lib")
    owner=""
    for candidate in "$lib" "$real" "${real#/usr}" "/usr$real"; do
        owner=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
    done
    [ -n "$owner" ] || { say "no Debian package owns $lib (linked by $python or $node)"; exit 1; }
    case ",$packages," in *",$owner,"*) ;; *) packages="$packages,$owner" ;; esac
done
include="ca-certificates,netbase,tzdata,passwd$packages"
say "debootstrap $suite minbase + ${include//,/ } (a few minutes)"
rootfs="$work/rootfs"
debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }

# Slim as Debian's slim images: later installs skip docs, man pages and locales too.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/palette-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$rootfs"/usr/share/{man,info,lintian}/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF

# ---------------------------------------------------------------- node image
# A copy of the slim Debian with Node.js in /usr/local, as the official image lays it out.
node_rootfs="$work/node-rootfs"
cp -a "$rootfs" "$node_rootfs"
mkdir -p "$node_rootfs/usr/local/bin" "$node_rootfs/usr/local/lib/node_modules"
cp -L "$node" "$node_rootfs/usr/local/bin/node"
for module in npm corepack; do
    if [ -d "$node_modules/$module" ]; then
        cp -a "$node_modules/$module" "$node_rootfs/usr/local/lib/node_modules/"
    fi
done
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$node_rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$node_rootfs/usr/local/bin/npx"
if [ -d "$node_rootfs/usr/local/lib/node_modules/corepack" ]; then
    ln -s ../lib/node_modules/corepack/dist/corepack.js "$node_rootfs/usr/local/bin/corepack"
fi
chroot "$node_rootfs" /usr/bin/env PATH=/usr/local/bin:/usr/bin:/bin sh -c \
    'echo "base-images: node $(node --version) and npm $(npm --version) in /usr/local"' >&2
rm -rf "$node_rootfs/root/.npm"  # the log of that npm --version
tar -C "$node_rootfs" --numeric-owner -c . | "$engine" import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["node"]' \
    - "$node_tag" >/dev/null
say "imported $node_tag ($(du -sh --apparent-size "$node_rootfs" | cut -f1) on disk)"
rm -rf "$node_rootfs"

# -------------------------------------------------------------- python image
# CPython into /usr/local: what the official image keeps (no tests, bytecode, static libraries).
local="$rootfs/usr/local"
mkdir -p "$local/bin" "$local/lib" "$local/include"
cp -a "$prefix/bin/python$version" "$local/bin/"
cp -a "$prefix"/lib/libpython*.so* "$local/lib/"
[ -d "$prefix/include/python$version" ] && cp -a "$prefix/include/python$version" "$local/include/"
tar -C "$prefix/lib" -c \
    --exclude="python$version/site-packages/*" \
    --exclude='__pycache__' --exclude='*.pyc' --exclude='*.a' \
    --exclude=test --exclude=tests --exclude=idle_test \
    "python$version" | tar -C "$local/lib" -x
# Without symbols, as the official image links CPython (-Wl,--strip-all): ~40 MB less.
strip --strip-unneeded "$local/bin/python$version" "$local"/lib/libpython*.so.* \
    "$local/lib/python$version"/lib-dynload/*.so
ln -s "python$version" "$local/bin/python3"
ln -s python3 "$local/bin/python"
chroot "$rootfs" /sbin/ldconfig
chroot "$rootfs" /usr/local/bin/python3 -c '
import bz2, ctypes, decimal, hashlib, lzma, sqlite3, ssl, sys, uuid, zlib
print("base-images: python", sys.version.split()[0], "at", sys.prefix, "with", ssl.OPENSSL_VERSION)
' >&2

tar -C "$rootfs" --numeric-owner -c . | "$engine" import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$python_tag" >/dev/null
say "imported $python_tag ($(du -sh --apparent-size "$rootfs" | cut -f1) on disk)"
