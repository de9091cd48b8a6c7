#!/usr/bin/env bash
# Top-K vs Random on digits or digits-canvas, off the shelf and after pruning-aware fine-tuning (VPA paper §4.1.4's
# Random ablation, with the paper's protocol of fine-tuning with the pruning in place).
#
# Usage: benchmarks/topk_vs_random.sh CHECKPOINT [WORK_DIR] [RATES] [EPOCHS] [DATA]
#   CHECKPOINT  the tiny ViT trained on DATA (default digits), e.g. by
#               vitprune finetune --model vitprune_tiny_patch4_32 --weights random --data digits \
#                   --epochs 24 --batch 64 --lr 2e-3 -o engines/tiny_digits.pt
# Prints one line per (rate, method): top-1 off the shelf, top-1 after EPOCHS of fine-tuning, seconds.
set -euo pipefail
checkpoint=${1:?give the checkpoint of the tiny ViT trained on the data set}
work=${2:-engines/topk_vs_random}
rates=${3:-0.3 0.5}
epochs=${4:-8}
data=${5:-digits}
model=vitprune_tiny_patch4_32
mkdir -p "$work"
top1() { python -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"{d.get('test_top1', d.get('accuracy', {}).get('top1')):.4f}\")" "$1"; }
for rate in $rates; do
  for method in topk random; do
    started=$SECONDS
    vitprune eval --model $model --checkpoint "$checkpoint" --data "$data" --method $method --rate "$rate" \
      -o "$work/off_${method}_${rate}.json" >/dev/null
    vitprune finetune --model $model --weights "$checkpoint" --data "$data" --method $method --rate "$rate" \
      --epochs "$epochs" --batch 64 --lr 5e-4 -o "$work/ft_${method}_${rate}.pt" --json > "$work/ft_${method}_${rate}.json"
    echo "rate $rate $method: off the shelf $(top1 "$work/off_${method}_${rate}.json"), fine-tuned $epochs epochs $(top1 "$work/ft_${method}_${rate}.json") ($((SECONDS - started)) s)"
  done
done
