#!/usr/bin/env bash
# The shipped models, end to end: corpus -> teacher-256 (a short schedule, TEACHER_EPOCHS, validated
# on the real-speech validation part; with TEACHER_SNAPSHOT_MIN set, snapshots along the way and the
# one best on that part kept) -> distilled 128..1 (in parallel with the from-scratch baselines and
# ablations) -> fp16 check -> manifest -> eyelid value maps and head gains -> evaluation -> benchmark.
# RECIPE holds the training choices made on the validation part (scripts/validation_ablation.sh,
# docs/DECISIONS.md "Real voices"); every model of the family is trained with them.
# Every stage resumes or skips finished work. Budgets are wall-clock minutes on the machine that
# runs it (the shipped checkpoints: a 2-core CPU); they are recorded in each checkpoint's
# config.json / log and in docs/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NEUTRAL_CORPUS=${NEUTRAL_CORPUS:-corpus/default}   # the neutral face, no head: the first teacher stages
CORPUS=${CORPUS:-corpus/performance}               # the same clips performed (emotions, head motion)
TEACHER_EPOCHS=${TEACHER_EPOCHS:-24} # the teacher's first stage (scripts/seed_ablation.sh: 32 min, 1 thread)
TEACHER_MIN=${TEACHER_MIN:-60}      # teacher cap
BASELINE_MIN=${BASELINE_MIN:-4}     # per from-scratch baseline / ablation (1 thread)
SCALED_MIN=${SCALED_MIN:-34}        # the teacher's last stage, in the scaled model space (1 thread)
TEACHER_SNAPSHOT_MIN=${TEACHER_SNAPSHOT_MIN:-11} # snapshots kept along the way; the one best on validation
                                                # data (lips on real speech, upper face on val clips) ships
ADAPTER_MIN=${ADAPTER_MIN:-3}        # the teacher's contrast heads alone (core/identities/adapter.py), 2 threads
RECIPE=${RECIPE:---w-clo 1.0}       # the closure term (docs/DECISIONS.md "Real voices"), every model
                                    # (distilled-8 too: a boosted term cost it the synthetic lips, docs/DECISIONS.md
                                    # "distilled-8 without the closure boost")
CAUSAL=${CAUSAL:---audio-lookahead 3 --prediction v} # each frame also sees the features 3 frames later; v
                                    # prediction (docs/DECISIONS.md "The seed must matter")
MODEL=${MODEL:-$CAUSAL --bidirectional} # the shipped decoder sees x_t on both sides (a blink can form); models
                                    # trained from scratch (students copy their teacher's architecture)
PERFORMANCE=${PERFORMANCE:---performance --condition-dropout 0.1} # head motion and an emotion condition,
                                    # dropped for 10 % of rows (docs/DECISIONS.md "A whole performance")
# the blink, squint and head channels weigh more in the whole-face terms: the teacher's last stage and
# every distillation round (docs/DECISIONS.md "Channel weights")
CHANNELS=${CHANNELS:---channel-weight eyeBlink=8 --channel-weight eyeSquint=3 --channel-weight head=4}
# the brow*, eye* and head channels 3x larger in model space, chosen on validation data against 2
# (docs/DECISIONS.md "Jitter in the upper face")
SCALE=${SCALE:---upper-face-scale 3}
EPOCHS=200                          # upper bound; the minute budgets stop training first
mkdir -p runs

[[ -f $NEUTRAL_CORPUS/index.jsonl ]] || $PY -m core.data.synth --out "$NEUTRAL_CORPUS" --seed 0 --size default --neutral
[[ -f $CORPUS/index.jsonl ]] || $PY -m core.data.corpus_upgrade --corpus "$NEUTRAL_CORPUS" --out "$CORPUS"
# The teacher in stages (docs/DECISIONS.md "The seed must matter"). A causal decoder first: the data
# terms weighted clamp(SNR, 1, 5), then 12 epochs from those weights with them weighted up to SNR
# 1000 (nearly the v-loss), which teaches the removal of the last noise. Then the same weights
# widened into a bidirectional decoder (core/training/widen.py: it starts out computing what the
# causal one did) and trained again in the two weightings; then widened once more to the whole performance
# (core/training/widen.py widen_to_performance: head channels and the emotion start at zero) and trained
# in the two weightings; then 6 more epochs with the channel weights; then the same weights trained
# with the upper face and head held SCALE times larger in model space, with snapshots
# (docs/DECISIONS.md "Jitter in the upper face").
$PY -m core.training.train --data "$NEUTRAL_CORPUS" --out runs/teacher-256-stage1 --steps 256 --epochs "$TEACHER_EPOCHS" \
    --max-minutes "$TEACHER_MIN" --snr-max 5 $RECIPE $CAUSAL
$PY -m core.training.train --data "$NEUTRAL_CORPUS" --out runs/teacher-256-causal --steps 256 --epochs 12 --lr 3e-4 \
    --snr-max 1000 --init runs/teacher-256-stage1 $RECIPE $CAUSAL
$PY -m core.training.train --data "$NEUTRAL_CORPUS" --out runs/teacher-256-wide --steps 256 --epochs 10 --lr 5e-4 \
    --snr-max 5 --init runs/teacher-256-causal $RECIPE $MODEL
$PY -m core.training.train --data "$NEUTRAL_CORPUS" --out runs/teacher-256-wide2 --steps 256 --epochs 6 --lr 2e-4 \
    --snr-max 1000 --init runs/teacher-256-wide $RECIPE $MODEL
$PY -m core.training.train --data "$CORPUS" --out runs/teacher-256-performance --steps 256 --epochs 10 --lr 5e-4 \
    --snr-max 5 --init runs/teacher-256-wide2 $RECIPE $MODEL $PERFORMANCE
$PY -m core.training.train --data "$CORPUS" --out runs/teacher-256-performance2 --steps 256 --epochs 6 --lr 2e-4 \
    --snr-max 1000 --init runs/teacher-256-performance $RECIPE $MODEL $PERFORMANCE
$PY -m core.training.train --data "$CORPUS" --out runs/teacher-256-channels --steps 256 --epochs 6 --lr 2e-4 \
    --snr-max 1000 --init runs/teacher-256-performance2 $RECIPE $MODEL $PERFORMANCE $CHANNELS
$PY -m core.training.train --data "$CORPUS" --out checkpoints/teacher-256 --steps 256 --epochs 14 --lr 2e-4 \
    --max-minutes "$SCALED_MIN" --threads 1 --snr-max 1000 --init runs/teacher-256-channels \
    ${TEACHER_SNAPSHOT_MIN:+--snapshot-minutes "$TEACHER_SNAPSHOT_MIN"} $RECIPE $MODEL $PERFORMANCE $CHANNELS $SCALE
if [[ -n $TEACHER_SNAPSHOT_MIN ]]; then
  $PY -m experiments.realspeech.select checkpoints/teacher-256 --data "$CORPUS"   # validation data only
fi
$PY -m core.identities.adapter --checkpoint checkpoints/teacher-256 --data "$CORPUS" --minutes "$ADAPTER_MIN"

distill_chain() {   # early halvings change little; the last rounds get the most time
  $PY -m core.training.distill --teacher checkpoints/teacher-256 --data "$CORPUS" --out-root checkpoints --down-to 32 \
      --epochs $EPOCHS --max-minutes 2 --threads 1 $RECIPE $CHANNELS
  $PY -m core.training.distill --teacher checkpoints/distilled-32 --data "$CORPUS" --out-root checkpoints --down-to 16 \
      --epochs $EPOCHS --max-minutes 4 --threads 1 $RECIPE $CHANNELS
  $PY -m core.training.distill --teacher checkpoints/distilled-16 --data "$CORPUS" --out-root checkpoints --down-to 8 \
      --epochs $EPOCHS --max-minutes 4 --threads 1 $RECIPE $CHANNELS
  $PY -m core.training.distill --teacher checkpoints/distilled-8 --data "$CORPUS" --out-root checkpoints --down-to 1 \
      --epochs $EPOCHS --max-minutes 5 --threads 1 $RECIPE $CHANNELS
}
baselines() {
  for steps in 32 16 8; do
    $PY -m core.training.train --data "$CORPUS" --out checkpoints/scratch-$steps --steps $steps --epochs $EPOCHS \
        --max-minutes "$BASELINE_MIN" --threads 1 $RECIPE $MODEL $PERFORMANCE
  done
  common=(--data "$CORPUS" --steps 8 --epochs $EPOCHS --max-minutes "$BASELINE_MIN" --threads 1 $RECIPE $MODEL $PERFORMANCE)
  $PY -m core.training.train "${common[@]}" --out checkpoints/ablation-8-no-lip --w-lip 0
  $PY -m core.training.train "${common[@]}" --out checkpoints/ablation-8-no-vel --w-vel 0
  $PY -m core.training.train "${common[@]}" --out checkpoints/ablation-8-no-identity --no-identity
}
distill_chain > runs/distill.log 2>&1 &
baselines > runs/baselines.log 2>&1 &
wait

[[ ${TRAIN_ONLY:-0} == 1 ]] && exit 0     # TRAIN_ONLY=1: the models, no evaluation
$PY -m core.model.manifest checkpoints
$PY -m experiments.evaluate fp16 distilled-8 --checkpoints checkpoints --data "$CORPUS"
$PY -m core.model.manifest checkpoints --fp16
# every shipped model's noise temperature, eyelid value maps and head gain, fitted on val clips no
# decision uses (docs/DECISIONS.md "Noise temperature, fitted per model", "Blink depth", "The head
# filter, second try")
$PY -m experiments.evaluate value-maps --checkpoints checkpoints --data "$CORPUS"
$PY -m experiments.evaluate tables --checkpoints checkpoints --data "$CORPUS"
# which step counts keep the seed is decided on validation clips (the page offers only those), then reported on test
$PY -m experiments.evaluate upper-face --checkpoints checkpoints --data "$CORPUS" --split val --offer --no-write \
    --style-steps
$PY -m experiments.evaluate upper-face --checkpoints checkpoints --data "$CORPUS" --real
$PY -m experiments.evaluate performance --checkpoints checkpoints --data "$CORPUS" --real \
    ${PREVIOUS:+--previous "${PREVIOUS%% *}"}
$PY -m experiments.evaluate enrolment distilled-8 --checkpoints checkpoints --data "$CORPUS"
$PY -m experiments.evaluate encoder distilled-8 --checkpoints checkpoints --data "$CORPUS"
# PREVIOUS (earlier releases' checkpoints folders, space-separated) and OLD_CORPUS (the corpus they
# were trained on): the same model on both test splits, and the end-to-end time of all in one run
if [[ -n ${PREVIOUS:-} ]]; then
  read -ra previous <<< "$PREVIOUS"
  $PY -m experiments.evaluate splits distilled-8 --checkpoints checkpoints --data "$CORPUS" \
      --old-data "$OLD_CORPUS" --previous "${previous[@]}"
  $PY -m experiments.bench --checkpoints checkpoints --compare-with "${previous[@]}"
else
  $PY -m experiments.bench --checkpoints checkpoints
fi
$PY -m experiments.realspeech --steps 8 1
$PY -m experiments.robustness --checkpoints checkpoints
$PY -m experiments.loadtest --checkpoints checkpoints
$PY -m experiments.live --checkpoints checkpoints
$PY -m experiments.live_browser --checkpoints checkpoints
$PY -m experiments.viewer_latency --checkpoints checkpoints
$PY -m experiments.soak --checkpoints checkpoints
$PY -m experiments.enrolment_speed --checkpoints checkpoints --data "${SMALL_CORPUS:-corpus/small}"
