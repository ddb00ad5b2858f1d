#!/usr/bin/env bash
# Installs the Debian packages whose images serve as the benchmark corpus (real photos,
# wallpapers and clip art). Idempotent: installs only what is missing. Needs root.
set -euo pipefail
PKGS=(mate-backgrounds gnome-backgrounds lomiri-wallpapers openclipart-png tuxpaint-stamps-default)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "image corpora already installed"; exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Install one by one so that a package missing from this release does not block the others.
for p in "${missing[@]}"; do
  $SUDO apt-get install -y -qq --no-install-recommends "$p" || echo "warning: could not install $p" >&2
done
