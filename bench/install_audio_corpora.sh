#!/usr/bin/env bash
# Installs the real-music corpora used by bench/audio_bench.py (Debian game data packages with
# OGG/Vorbis soundtracks) and espeak-ng (speech for the music-under-speech family). Idempotent:
# installs only what is missing. Needs root (or sudo).
#   tuning corpus:  freedroidrpg-data frozen-bubble-data supertux-data
#   second corpus:  hedgewars-data neverball-data extremetuxracer-data flare-game (never tuned on)
set -euo pipefail

PKGS=(freedroidrpg-data frozen-bubble-data supertux-data
      hedgewars-data neverball-data extremetuxracer-data flare-game
      espeak-ng)
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
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
