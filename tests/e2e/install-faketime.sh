#!/usr/bin/env bash
# The clock-jump tests (tests/e2e/test_clock_jumps.py) run a real web process under Debian's
# libfaketime, which moves that process's wall clock while the test runs: install it through
# apt where it is missing. Called by `make test` (and so by CI).
set -euo pipefail
if [ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "Installing Debian's libfaketime for the clock-jump tests (apt)..."
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libfaketime >/dev/null
