#!/usr/bin/env bash
# The shipped models, end to end: corpus -> teacher-256 -> distilled 128..1 -> baselines and
# ablations -> manifest (fp16) -> evaluation -> benchmark. Every stage resumes / skips finished work.
# Budgets are wall-clock minutes on the machine that runs it; the ones used for the shipped
# checkpoints are recorded in each checkpoint's config.json and in docs/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CORPUS=${CORPUS:-corpus/default}
TEACHER_MIN=${TEACHER_MIN:-30}      # teacher budget
ROUND_MIN=${ROUND_MIN:-3}           # per distillation round
BASELINE_MIN=${BASELINE_MIN:-8}     # per from-scratch baseline / ablation
EPOCHS=${EPOCHS:-200}               # upper bound; the minute budgets stop training first

[[ -f $CORPUS/index.jsonl ]] || $PY -m core.data.synth --out "$CORPUS" --seed 0 --size default
$PY -m core.train --data "$CORPUS" --out checkpoints/teacher-256 --steps 256 --epochs "$EPOCHS" --max-minutes "$TEACHER_MIN"
$PY -m core.distill --teacher checkpoints/teacher-256 --data "$CORPUS" --out-root checkpoints --down-to 1 \
    --epochs "$EPOCHS" --max-minutes "$ROUND_MIN"
for steps in 32 16 8; do
  $PY -m core.train --data "$CORPUS" --out checkpoints/scratch-$steps --steps $steps --epochs "$EPOCHS" --max-minutes "$BASELINE_MIN"
done
$PY -m core.train --data "$CORPUS" --out checkpoints/ablation-8-no-lip --steps 8 --w-lip 0 --epochs "$EPOCHS" --max-minutes "$BASELINE_MIN"
$PY -m core.train --data "$CORPUS" --out checkpoints/ablation-8-no-vel --steps 8 --w-vel 0 --epochs "$EPOCHS" --max-minutes "$BASELINE_MIN"
$PY -m core.train --data "$CORPUS" --out checkpoints/ablation-8-no-identity --steps 8 --no-identity --epochs "$EPOCHS" --max-minutes "$BASELINE_MIN"
$PY -m core.manifest checkpoints --fp16
$PY -m core.evaluate --checkpoints checkpoints --data "$CORPUS"
$PY -m core.bench --checkpoints checkpoints
