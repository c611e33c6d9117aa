#!/bin/sh
# Install podman for `make test-image` on a machine without a Docker engine:
# Debian's podman, runc as its runtime (Debian's default, crun, is not installed)
# and debootstrap, which makes the base image where no registry can be reached
# (tools/image/base-images.sh). Needs root and apt-get.
set -eu

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-podman: no apt-get here: install podman, runc and debootstrap yourself" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-podman: apt-get needs root: run as root, or install podman, runc and debootstrap" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q podman runc debootstrap
