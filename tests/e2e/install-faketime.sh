#!/usr/bin/env bash
# The clock-jump tests (tests/e2e/test_clock_jumps.py) run a real web process under Debian's
# libfaketime, which moves that process's wall clock while the test runs: install it through
# apt where it is missing. Called by `make test` (and so by CI).
exec "$(dirname "$0")/../install-debian-package.sh" \
  /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 libfaketime "the clock-jump tests"
