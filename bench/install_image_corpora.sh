#!/usr/bin/env bash
# Installs the Debian packages whose images serve as the benchmark corpus (real photos,
# wallpapers and clip art). Idempotent: installs only what is missing. Needs root.
# --second also installs the second corpus, which no threshold is tuned on (game screenshots,
# Endless Sky's landscapes and planets, KDE's card decks), and renders 26 cards of every deck
# to PNG under $CM_BENCH_CARDS (default /var/cache/contentmatch-bench/cards).
set -euo pipefail
PKGS=(mate-backgrounds gnome-backgrounds lomiri-wallpapers openclipart-png tuxpaint-stamps-default)
SECOND=0
if [ "${1:-}" = "--second" ]; then
  SECOND=1
  PKGS+=(games-thumbnails endless-sky-data kdegames-card-data-kf5 librsvg2-bin)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -eq 0 ]; then
  echo "image corpora already installed"
else
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  # One by one, so that a package missing from this release does not block the others.
  for p in "${missing[@]}"; do
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$p" \
      || echo "warning: could not install $p" >&2
  done
fi
[ "$SECOND" -eq 1 ] || exit 0
CARDS="${CM_BENCH_CARDS:-/var/cache/contentmatch-bench/cards}"
$SUDO mkdir -p "$CARDS"
# Each deck is one SVG with its cards laid out in a grid: rendered whole here, cut into cards
# by bench/image_bench.py (rsvg-convert --export-id clips these decks' cards).
for deck in /usr/share/carddecks/svg-*/*.svgz; do
  name=$(basename "$(dirname "$deck")"); name=${name#svg-}
  out="$CARDS/$name.png"
  [ -s "$out" ] && continue
  svg=$(mktemp --suffix=.svg)
  zcat "$deck" >"$svg"
  $SUDO rsvg-convert -w 3000 -b white -o "$out" "$svg" || echo "warning: could not render $name" >&2
  rm -f "$svg"
done
echo "decks rendered under $CARDS: $(find "$CARDS" -maxdepth 1 -name '*.png' | wc -l)"
