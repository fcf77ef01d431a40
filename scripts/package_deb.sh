#!/usr/bin/env bash
# Builds a Debian package of emoscope with dpkg-deb (no other packaging tool needed):
#   /usr/bin/emoscope                                (the binary, stripped; the default model
#                                                     and the demo clip are built into it)
#   /usr/share/applications/emoscope.desktop         (menu entry: opens the monitor window)
#   /usr/share/icons/hicolor/256x256/apps/emoscope.png
#   /usr/share/doc/emoscope/{copyright,README.md}
# Usage: bash scripts/package_deb.sh [BINARY] [OUTDIR]
#   BINARY defaults to target/release/emoscope (run `cargo build --release` first),
#   OUTDIR to target/deb. Prints the path of the .deb. Install: sudo apt install ./FILE.deb
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release/emoscope}"
out="${2:-$root/target/deb}"
if [ ! -x "$bin" ]; then
  echo "error: no emoscope binary at $bin; run 'cargo build --release' first or pass its path" >&2
  exit 1
fi
command -v dpkg-deb >/dev/null || { echo "error: dpkg-deb not found (Debian/Ubuntu: apt-get install dpkg)" >&2; exit 1; }
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
stage="$(mktemp -d)"; trap 'rm -rf "$stage"' EXIT
pkg="$stage/emoscope_${version}_${arch}"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/share/applications" \
  "$pkg/usr/share/icons/hicolor/256x256/apps" "$pkg/usr/share/doc/emoscope"
install -m 0755 "$bin" "$pkg/usr/bin/emoscope"
strip --strip-unneeded "$pkg/usr/bin/emoscope" 2>/dev/null || true
install -m 0644 "$root/packaging/emoscope.desktop" "$pkg/usr/share/applications/emoscope.desktop"
install -m 0644 "$root/assets/emoscope.png" "$pkg/usr/share/icons/hicolor/256x256/apps/emoscope.png"
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/emoscope/README.md"
cat > "$pkg/usr/share/doc/emoscope/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: emoscope

Files: *
License: MIT OR Apache-2.0

Files: usr/bin/emoscope (built-in demo clip, assets/demo.flac)
Comment: synthetic voice generated with eSpeak NG and SoX (scripts/make_demo.sh)
License: MIT OR Apache-2.0

Files: usr/bin/emoscope (built-in font, assets/DejaVuSans.ttf)
License: Bitstream-Vera

Files: usr/bin/emoscope (built-in speech encoder, weights/whisper_base: OpenAI Whisper base, encoder blocks 0-3, float16)
Copyright: 2022 OpenAI
License: MIT
$(sed 's/^$/./; s/^/ /' "$root/weights/whisper_base/LICENSE")
COPY
size_kb="$(du -sk "$pkg/usr" | cut -f1)"
cat > "$pkg/DEBIAN/control" <<CTRL
Package: emoscope
Version: $version
Architecture: $arch
Maintainer: emoscope developers <emoscope@localhost>
Installed-Size: $size_kb
Depends: libc6, libgcc-s1, libasound2 | libasound2t64
Recommends: libgl1, libxkbcommon0, libxkbcommon-x11-0, libwayland-client0
Section: sound
Priority: optional
Description: real-time speech emotion monitor
 Speak into a microphone and see, live, your waveform, a scrolling log-mel
 spectrogram and a probability bar for each of eight emotions. A training tab
 records labelled clips and fine-tunes the model on them. The default model and a
 demo clip are built in: try "emoscope demo".
CTRL
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$pkg" "$out" >/dev/null
echo "$out/emoscope_${version}_${arch}.deb"
