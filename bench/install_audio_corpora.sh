#!/usr/bin/env bash
# Installs the real-music corpora used by bench/audio_bench.py (Debian game data packages with
# OGG/Vorbis soundtracks). Idempotent: installs only what is missing. Needs root (or sudo).
set -euo pipefail

PKGS=(freedroidrpg-data frozen-bubble-data supertux-data)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "audio corpora already installed: ${PKGS[*]}"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show "${missing[0]}" >/dev/null 2>&1; then
  $SUDO apt-get update -q
fi
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
