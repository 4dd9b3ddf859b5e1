#!/usr/bin/env bash
# The teacher choices of "the seed must matter", decided on validation data only: two 256-step
# teachers side by side (1 thread each, the shipped recipe otherwise), snapshots along the way,
# every snapshot scored by `experiments.realspeech.select` on both things a teacher must do (lip
# AUC on the real validation recordings, the upper face against the generator's truth on the
# corpus's val clips). Output: runs/seed/<variant>.select.log, one JSON line per candidate, and the
# shipped x0 teacher scored the same way as the control (docs/DECISIONS.md quotes them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CORPUS=${CORPUS:-corpus/default}
EPOCHS=${EPOCHS:-24}
SNAP=${SNAP:-6}
OUT=runs/seed
COMMON=(--data "$CORPUS" --steps 256 --epochs "$EPOCHS" --threads 1 --snapshot-minutes "$SNAP" --w-clo 1.0 --audio-lookahead 3)
mkdir -p $OUT
variant() {   # name extra-args...
  local name=$1; shift
  $PY -m core.training.train "${COMMON[@]}" --out $OUT/$name "$@" > $OUT/$name.log 2>&1
  $PY -m experiments.realspeech.select $OUT/$name --data "$CORPUS" > $OUT/$name.select.log 2>&1
}
control() {   # the shipped x0 teacher, scored as a snapshot would be
  [[ -s $OUT/x0-shipped.score.json ]] && return
  $PY -c "import json, sys; from pathlib import Path
from experiments.realspeech.__main__ import aligned_recordings
from experiments.realspeech.select import score
from experiments.realspeech.sources import DEFAULT_AUDIO_DIR
aligned = aligned_recordings(DEFAULT_AUDIO_DIR, validation_only=True, tts_control=False)[0]
print(json.dumps(score(Path(sys.argv[1]), aligned, sys.argv[2])))" "${CONTROL:-checkpoints/teacher-256}" "$CORPUS" \
      > $OUT/x0-shipped.score.json
}
variant v-uniform --prediction v &
variant v-snr5 --prediction v --snr-max 5 &
wait
# Second stage (both first-stage teachers still left most noise in place at low noise levels,
# `python -m experiments.evaluate follow`): from v-snr5's weights, 12 epochs with the data terms
# weighted up to SNR 1000 (nearly the v-loss), lr 3e-4.
$PY -m core.training.train --data "$CORPUS" --steps 256 --epochs 12 --lr 3e-4 --threads 1 --snapshot-minutes 5 \
    --w-clo 1.0 --audio-lookahead 3 --prediction v --snr-max 1000 --init $OUT/v-snr5 \
    --out $OUT/v-snr5-ft1000 > $OUT/v-snr5-ft1000.log 2>&1
$PY -m experiments.realspeech.select $OUT/v-snr5-ft1000 --data "$CORPUS" > $OUT/v-snr5-ft1000.select.log 2>&1
control
tail -n +1 $OUT/*.select.log $OUT/x0-shipped.score.json | grep -v '^$'
