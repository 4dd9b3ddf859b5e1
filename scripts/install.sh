#!/usr/bin/env bash
# Installs everything the project needs into ./.venv (idempotent). `--dev` adds the test tools.
# System packages come from Debian when we are root or have sudo (elsewhere install them yourself):
# packages.txt (EGL for headless rendering, TTS engines and sox for the corpus; no comments in it,
# Hugging Face Spaces reads it too) and, with --dev, Chromium for the browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[[ "${1:-}" == "--dev" ]] && dev=1

apt_packages=$(xargs < packages.txt)
[[ $dev == 1 ]] && apt_packages="$apt_packages chromium"
missing=$(for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
# Another apt or dpkg (unattended upgrades, a second install) may hold the lock: wait for it (up to
# 15 minutes; apt says "Waiting for cache lock") instead of failing at once.
apt_wait=(-o DPkg::Lock::Timeout=900)
if [[ -n "$missing" ]] && command -v apt-get >/dev/null; then
  sudo_cmd=""; [[ $(id -u) != 0 ]] && sudo_cmd="sudo"
  echo "installing Debian packages: $missing"
  $sudo_cmd apt-get "${apt_wait[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get "${apt_wait[@]}" install -y -qq --no-install-recommends $missing >/dev/null
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
req=requirements.txt; [[ $dev == 1 ]] && req=requirements-dev.txt
.venv/bin/python -m pip install -q -r "$req"
