#!/usr/bin/env bash
# Install everything the tests need, then run them:  bash tests/run.sh [pytest options]
# Needs: python3 (3.10+). Installs exiftool and exiv2 (the independent metadata readers) with apt when
# they are missing and this user may install packages, and the project into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v exiftool >/dev/null || ! command -v exiv2 >/dev/null; then
  apt="apt-get"
  [ "$(id -u)" = 0 ] || apt="sudo -n apt-get"
  if $apt update -qq >/dev/null 2>&1 && $apt install -y -qq libimage-exiftool-perl exiv2 >/dev/null 2>&1; then
    echo "installed exiftool and exiv2"
  else
    echo "note: could not install exiftool/exiv2; the round-trip tests that need them will be skipped" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu,test]" 2> >(grep -v "^WARNING: Location" >&2)
exec .venv/bin/python -m pytest -q "$@"
