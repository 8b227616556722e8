#!/usr/bin/env bash
# Install a Debian package some tests need, through apt, unless the file it provides is there:
#   tests/install-debian-package.sh <file the package provides> <package> <which tests need it>
# Called through the Makefile's `make test` (and so by CI); uses sudo when not root.
set -euo pipefail
provided="$1" package="$2" needed_by="$3"
if [ -e "$provided" ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "Installing Debian's ${package} for ${needed_by} (apt)..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null
