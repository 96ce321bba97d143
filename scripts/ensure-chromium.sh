#!/usr/bin/env bash
# Makes sure a headless Chromium is on the machine for the dashboard's tests
# in a real browser (workers/dashboard/tests/it/browser*.rs). Debian's
# `chromium` package is the only way to get one here: the browser downloads
# of Puppeteer, Playwright or the crates reach hosts these machines cannot.
# Quick when it is there; installs it with apt-get (as root) when it is not.
# Run it (it installs when needed), or source it and call ensure_chromium.

ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-chromium: no chromium on this machine, and installing it needs root:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y chromium" >&2
    return 1
  fi
  echo "chromium: installing Debian's chromium package (once)" >&2
  # Two runs started together must not both drive apt.
  local lock="${TMPDIR:-/tmp}/clerk-sync-chromium.lock"
  (
    flock 9
    command -v chromium >/dev/null 2>&1 && exit 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 &&
      apt-get install -y -q chromium >&2
  ) 9>"$lock" || {
    echo "ensure-chromium: apt-get could not install chromium" >&2
    return 1
  }
  command -v chromium >/dev/null 2>&1 || {
    echo "ensure-chromium: apt-get finished but there is no chromium binary" >&2
    return 1
  }
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  ensure_chromium
fi
