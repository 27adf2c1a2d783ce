#!/usr/bin/env bash
# Install the headless browser the review app's browser test drives (tests/review/test_review_browser.py):
# Debian's chromium and its matching chromedriver. Nothing is downloaded by the tests themselves.
# Usage (as root, or with sudo available): review/testing_browser.sh
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "chromium and chromedriver already installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
    exit 0
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
/usr/bin/chromium --version
/usr/bin/chromedriver --version
