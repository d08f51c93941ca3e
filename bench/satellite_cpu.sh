#!/bin/sh
# CPU and memory of hearth-satellite while it listens for the wake word: the stand-in microphone
# (tests/satellite/mic.py, quiet room noise in real time), no broker (it keeps retrying in the
# background), SECONDS_TO_MEASURE after a 5 s start. Extra satellite options in $EXTRA, the Python
# in $PY. Usage: nice -n 5 bench/satellite_cpu.sh   (figures: docs/satellite.md, findings)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
SECONDS_TO_MEASURE=${SECONDS_TO_MEASURE:-30}
QUEUE=$(mktemp -d)
cd "$ROOT"
# shellcheck disable=SC2086
"$PY" -m hearth_satellite --id bench --port 1 --mic-command "$PY tests/satellite/mic.py $QUEUE" --snd-command "" \
    ${EXTRA:-} >"$QUEUE/log" 2>&1 &
pid=$!
sleep 5
t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
sleep "$SECONDS_TO_MEASURE"
t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
kill "$pid"
wait "$pid" 2>/dev/null || true
rm -rf "$QUEUE"
awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v s="$SECONDS_TO_MEASURE" -v rss="$rss" -v extra="${EXTRA:-}" \
    'BEGIN { printf "| `%s` | %.2f %% | %d MB |\n", extra, (b - a) / hz / s * 100, rss / 1024 }'
