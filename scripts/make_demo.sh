#!/usr/bin/env bash
# Rebuilds assets/demo.flac: two sentences from espeak-ng's formant synthesiser, a slow,
# low, quiet one and a fast, high, loud one, 0.6 s apart, 16 kHz mono 16-bit FLAC.
# Needs: apt-get install -y espeak-ng sox. See assets/README.md for why a synthetic voice.
set -euo pipefail
cd "$(dirname "$0")/.."
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
espeak-ng -v en-gb -s 130 -p 25 -a 90 -w "$t/calm.wav" \
  "I am sitting by the window, and everything is quiet and slow today."
espeak-ng -v en-gb -s 210 -p 85 -a 180 -w "$t/loud.wav" \
  "Stop that right now! I told you three times already, this is not acceptable!"
sox "$t/calm.wav" "$t/calm16.wav" gain -6 rate 16000
sox "$t/loud.wav" "$t/loud16.wav" gain -6 rate 16000
sox -n -r 16000 -c 1 "$t/gap.wav" trim 0 0.6
sox "$t/calm16.wav" "$t/gap.wav" "$t/loud16.wav" -b 16 assets/demo.flac gain -n -3
echo "wrote assets/demo.flac"
