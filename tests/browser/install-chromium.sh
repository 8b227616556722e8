#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (never a browser downloaded by Playwright):
# install it through apt where it is missing. Called by `make test` (and so by CI).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "Installing Debian's chromium for the browser tests (apt)..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
