#!/usr/bin/env bash
# The corpus and training choices of issue 14, decided on the real-speech *validation* part only:
# small 8-step models trained from scratch for the same minutes, two side by side (1 thread each),
# each scored with `python -m experiments.realspeech --validation-only` (no test recording is read).
# Output: one JSON line per variant in runs/ablation/results.jsonl (quoted in docs/DECISIONS.md).
# Finished variants are skipped, so a rerun only trains what is new. Round 1 gives each variant
# MIN minutes; round 2 a fixed 12 epochs (the same cosine schedule whatever else the machine runs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OLD=${OLD:-/work/corpus/default}      # synth-3: espeak-ng + flite, four augmentations
NEW=${NEW:-/work/corpus/default4}     # synth-4: + festival, piper, channel/codec/breath/babble
MIN=${MIN:-5}
OUT=runs/ablation
NEW_AUGMENTATIONS=breath,babble,microphone,highpass,lowpass,telephone,mp3,opus
mkdir -p $OUT
touch $OUT/results.jsonl

variant() {   # name corpus extra-args...  (round 1: a minute budget)
  local name=$1 data=$2; shift 2
  $PY -m core.training.train --data "$data" --out $OUT/$name --steps 8 --epochs 200 --max-minutes "$MIN" --threads 1 "$@" \
      > $OUT/$name.log 2>&1
}
variant_epochs() {   # name corpus extra-args...  (round 2: 12 epochs unless the args say otherwise)
  local name=$1 data=$2; shift 2
  $PY -m core.training.train --data "$data" --out $OUT/$name --steps 8 --epochs 12 --threads 1 "$@" > $OUT/$name.log 2>&1
}
score() {
  grep -q "\"variant\": \"$1\"" $OUT/results.jsonl && return
  $PY -m experiments.realspeech --validation-only --no-tts-control --checkpoints $OUT/$1 --steps 8 2>/dev/null \
      | tail -1 | sed "s/^{/{\"variant\": \"$1\", /" >> $OUT/results.jsonl
}
pair() {      # two variants side by side, then their scores
  local train=${TRAIN:-variant}
  $train "${A[@]}" & $train "${B[@]}" & wait
  score "${A[0]}"; score "${B[0]}"
}
A=(old-corpus "$OLD"); B=(new-corpus "$NEW"); pair
A=(new-feature-reg "$NEW" --feature-noise 0.3 --time-mask 0.1); B=(new-closure "$NEW" --w-clo 1.0); pair
A=(new-voices-only "$NEW" --without "$NEW_AUGMENTATIONS"); B=(new-augment-only "$NEW" --without festival,piper); pair
# Round 2: audio look-ahead (each frame also sees the features k frames later), seeds
TRAIN=variant_epochs
A=(base-e12 "$NEW" --w-clo 1); B=(look3-e12 "$NEW" --w-clo 1 --audio-lookahead 3); pair
A=(look6-e12 "$NEW" --w-clo 1 --audio-lookahead 6); B=(look3-e12-s1 "$NEW" --w-clo 1 --audio-lookahead 3 --seed 1); pair
cat $OUT/results.jsonl
