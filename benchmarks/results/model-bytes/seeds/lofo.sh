#!/bin/bash
# usage: lofo.sh PY TAG BACKEND SEEDS...   retrain the HEAD-of-main bundle samples with seed S, score with LOFO
PY=$1; TAG=$2; BACKEND=$3; shift 3
OUT=/tmp/s18/fp; HERE=/work/main/benchmarks
case $BACKEND in
  ort-cpu) TRUTH="--truth-from results/layout-context/before/evaluate-ort-cpu.json" ;;
  tvm-llvm) TRUTH="--truth-from results/tvm-llvm-rebuild-attempt/before/evaluate-tvm-llvm.json --trust-names" ;;
esac
for S in "$@"; do
  N=$BACKEND-$TAG-$S
  SRC=$OUT/lsrc-$N; rm -rf $SRC $OUT/lb-$N $OUT/leval-$N; cp -a /tmp/s18/s3/nnmeter_tvm/predictors/bundles/$BACKEND $SRC
  $PY -c "import json,sys; p='$SRC/bundle.json'; b=json.load(open(p)); b['build']['config']['seed']=$S; json.dump(b,open(p,'w'))"
  (cd /tmp && $PY -m nnmeter_tvm build --backend $BACKEND --retrain $SRC -o $OUT/lb-$N --quiet > $OUT/lb-$N.log 2>&1)
  (cd $HERE && $PY evaluate.py --backend $BACKEND --predictor $OUT/lb-$N $TRUTH --no-measure \
      --store $OUT/lstore-$N.sqlite --out $OUT/leval-$N > $OUT/leval-$N.log 2>&1)
  echo "$N: $(grep "^| $BACKEND" $OUT/leval-$N/evaluate-$BACKEND.md)" >> $OUT/lofo.txt
done
