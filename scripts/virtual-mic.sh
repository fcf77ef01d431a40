#!/usr/bin/env bash
# Starts a PulseAudio server whose default source is a FIFO (a virtual microphone behind
# ALSA `default`), as ../shared/HEADLESS_TESTING.md describes. Tests write s16le 16 kHz
# mono PCM into $EMOSCOPE_VIRTUAL_MIC (tests/virtual_mic.rs runs only when it is set). Prints the export lines to eval; `stop` kills the server.
#   eval "$(bash scripts/virtual-mic.sh start)"; ...; bash scripts/virtual-mic.sh stop
set -euo pipefail
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/emoscope-xdg}
FIFO=/tmp/emoscope-vmic.fifo
export VMIC_FIFO=$FIFO
case "${1:-start}" in
  start)
    mkdir -p "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
    if pactl info >/dev/null 2>&1 && [ -p "$FIFO" ]; then   # already running: reuse it
      echo "export XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR EMOSCOPE_VIRTUAL_MIC=$FIFO"; exit 0
    fi
    rm -f "$FIFO"   # module-pipe-source makes the FIFO itself (a pre-made one hangs the load)
    pulseaudio -D --exit-idle-time=-1 --disallow-exit -n \
      --load=module-native-protocol-unix --load="module-null-sink sink_name=vsink" \
      --load="module-pipe-source source_name=vmic file=$FIFO format=s16le rate=16000 channels=1" >/dev/null 2>&1
    for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
    pactl set-default-source vmic
    echo "export XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR EMOSCOPE_VIRTUAL_MIC=$FIFO"
    ;;
  stop)
    pkill -x pulseaudio || true
    # Wait for it to be gone, so a `start` right after (tests/device_restart.rs) works.
    for _ in $(seq 50); do pgrep -x pulseaudio >/dev/null || break; sleep 0.1; done
    ;;
esac
