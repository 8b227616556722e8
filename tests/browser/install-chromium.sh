#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (never a browser downloaded by Playwright):
# install it through apt where it is missing. Called by `make test` (and so by CI).
exec "$(dirname "$0")/../install-debian-package.sh" /usr/bin/chromium chromium "the browser tests"
