#!/bin/bash
# Retrain a shipped bundle's samples with training seeds 0-2 and score each offline (no LOFO),
# under two installs: the code before flops_blocked (OLD_PY, its bundles in OLD_BUNDLES) and
# this code (NEW_PY, the bundles as they were before this change, in OLD_BUNDLES too: the same
# samples).  Usage: seeds.sh BACKEND OLD_PY NEW_PY OLD_BUNDLES OUT
set -e
BACKEND=$1; OLD_PY=$2; NEW_PY=$3; OLD_BUNDLES=$4; OUT=$5
HERE=$(cd "$(dirname "$0")/../.." && pwd)   # benchmarks/
case $BACKEND in
  ort-cpu) TRUTH="--truth-from results/layout-context/before/evaluate-ort-cpu.json" ;;
  tvm-llvm) TRUTH="--truth-from results/tvm-llvm-rebuild-attempt/before/evaluate-tvm-llvm.json --trust-names" ;;
esac
for S in 0 1 2; do
  for V in old new; do
    PY=$OLD_PY; [ $V = new ] && PY=$NEW_PY
    SRC=$OUT/src-$BACKEND-$V-$S; rm -rf $SRC; cp -a $OLD_BUNDLES/$BACKEND $SRC
    $PY -c "import json,sys; p='$SRC/bundle.json'; b=json.load(open(p)); b['build']['config']['seed']=$S; json.dump(b,open(p,'w'))"
    (cd /tmp && $PY -m nnmeter_tvm build --backend $BACKEND --retrain $SRC -o $OUT/b-$BACKEND-$V-$S --quiet > /dev/null 2>&1)
    (cd $HERE && $PY evaluate.py --backend $BACKEND --predictor $OUT/b-$BACKEND-$V-$S $TRUTH --no-measure \
        --no-lofo --store $OUT/store-$BACKEND-$V-$S.sqlite --out $OUT/eval-$BACKEND-$V-$S > $OUT/eval-$BACKEND-$V-$S.log 2>&1)
    echo "$BACKEND $V seed $S: $(grep "^| $BACKEND" $OUT/eval-$BACKEND-$V-$S/evaluate-$BACKEND.md)"
  done
done
