#!/usr/bin/env bash
# Install everything the tests need, then run them:  bash tests/run.sh [pytest options]
# Needs: python3 (3.10+). Installs with apt, when they are missing and this user may install packages,
# exiftool and exiv2 (the independent metadata readers) and Debian's chromium and chromium-driver (the
# review page's browser test), and the project twice: into .venv-tagging as `pip install terc-tag` does
# (no TensorFlow: the tagging commands are tested there), and into .venv with TensorFlow (`[train]`) for
# everything. With pytest options, only the second runs (e.g. one test file). Before pytest, `ruff check` and
# `mypy` (configured in pyproject.toml) must pass: a lint or type error fails the run.
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

install() {  # install VENV EXTRAS
  [ -x "$1/bin/python" ] || python3 -m venv "$1"
  "$1/bin/python" -m pip install -q --disable-pip-version-check -e ".[$2]" 2> >(grep -v "^WARNING: Location" >&2)
}

if [ $# -eq 0 ]; then
  install .venv-tagging test
  if .venv-tagging/bin/python -c "import tensorflow" 2>/dev/null; then
    echo "error: .venv-tagging has TensorFlow; the install without it is not what is tested" >&2
    exit 1
  fi
  .venv-tagging/bin/python -m pytest -q tests/test_no_tensorflow.py
fi
install .venv "train,test,ray"
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
