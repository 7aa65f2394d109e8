#!/usr/bin/env bash
# Install everything the tests need, then run them:  bash tests/run.sh [pytest options]
# Needs: python3 (3.10+). Installs with apt, when they are missing and this user may install packages,
# exiftool and exiv2 (the independent metadata readers) and Debian's chromium and chromium-driver (the
# review page's browser test), and the project into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v exiftool >/dev/null || ! command -v exiv2 >/dev/null \
    || [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt="apt-get"
  [ "$(id -u)" = 0 ] || apt="sudo -n apt-get"
  if $apt update -qq >/dev/null 2>&1 \
      && $apt install -y -qq libimage-exiftool-perl exiv2 chromium chromium-driver >/dev/null 2>&1; then
    echo "installed exiftool, exiv2, chromium and chromium-driver"
  else
    echo "note: could not install exiftool/exiv2/chromium; the tests that need them will be skipped" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu,test,ray]" 2> >(grep -v "^WARNING: Location" >&2)
exec .venv/bin/python -m pytest -q "$@"
