#!/bin/bash
# How often a two-rank `gnnkit train` run fails at exit (the gloo shutdown abort fixed in 52c1cd9:
# "terminate called without an active exception", SIGABRT). Partitions a small csbm graph, then runs
# `torchrun --standalone --nproc-per-node 2 -m gnnkit train --dataset PARTS --sampler full` N times and
# prints the number of non-zero exits. Usage: bash benchmarks/two_rank_exits.sh [N=40]
# Recorded (2026-11-30, 2-core x86-64, 1 thread per rank): before the fix 1 failure in 14 runs; after, 0 in 40.
set -u
n=${1:-40}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
python -m gnnkit partition csbm --num-nodes 1200 --num-features 16 --num-classes 4 --num-parts 2 \
  --out "$work/parts" > /dev/null || exit 1
fail=0
for i in $(seq 1 "$n"); do
  rm -rf "$work/run"
  if ! timeout 120 python -m torch.distributed.run --standalone --nproc-per-node 2 -m gnnkit train \
      --dataset "$work/parts" --sampler full --model sage --hidden 16 --dropout 0 --no-progress --device cpu \
      --epochs 20 --out "$work/run" > "$work/log" 2>&1; then
    fail=$((fail + 1))
    grep -m1 -E "terminate|exitcode" "$work/log"
  fi
done
echo "two-rank runs: $n, failed: $fail"
