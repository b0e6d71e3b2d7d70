#!/usr/bin/env bash
# The seed's ablation on synthvi as one table: AGW and CGRNet without augmentation, with PAPG, PAPG
# without pose, PAPG without attention and the true counterparts (the upper bound), one seed.
#
#   bash experiments/augmentation_ablation.sh [WORK] [OUT]
#   SEEDS="0 1 2" bash experiments/augmentation_ablation.sh [WORK] [OUT]
#
# WORK (default papg-work-ablation) is the workspace; OUT (default WORK/ablation) receives the report.
# SEEDS (default 0) are the baselines' seeds; the generators and their sets are seed 0's throughout, so
# the seeds measure the spread of the ReID training on fixed sets.
# The first step is the demo itself (synthvi small, SYSU-MM01 layout, 128x64, tiny presets, two
# generator epochs, seed 0, 2 threads), so the rows it shares with results/demo/ are the demo's runs;
# the rest uses the same settings. Rows that matter most come first, so an interrupted run still
# leaves a usable table: rerunning skips every stage that is complete.
set -euo pipefail

WORK=${1:-papg-work-ablation}
OUT=${2:-$WORK/ablation}
PB=${PAPG_BENCH:-papg-bench}
P="$PB --threads 2 --work $WORK"
D=synthvi

stamp() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
reid() {  # baseline augment [seed]
  stamp "train $1 $2 seed ${3:-0}"
  $P train --dataset $D --baseline "$1" --augment "$2" --seed "${3:-0}" --preset tiny
  $P evaluate --dataset $D --baseline "$1" --augment "$2" --seed "${3:-0}"
}
generator() {  # run display flag
  stamp "train-generator $1"
  $P train-generator --dataset $D --preset tiny --epochs 2 --seed 0 --run "$1" "$3"
  $P generate --dataset $D --score --run "$1" --display "$2"
}

stamp "demo"
$PB --work "$WORK" demo --out "$OUT/demo"
$P generate --dataset $D --counterparts
reid agw gen:counterparts
generator papg-nopose "PAPG w/o pose" --no-pose
reid agw gen:papg-nopose
reid cgrnet gen:counterparts
reid cgrnet gen:papg-nopose
generator papg-noatt "PAPG w/o attention" --no-attention
reid agw gen:papg-noatt
reid cgrnet gen:papg-noatt
for seed in ${SEEDS:-0}; do
  [ "$seed" = 0 ] && continue
  for b in agw cgrnet; do
    for a in none papg gen:counterparts gen:papg-nopose gen:papg-noatt; do
      reid "$b" "$a" "$seed"
    done
  done
done
stamp "report"
$P report --dataset $D --format md,csv --out "$OUT"
stamp "done"
