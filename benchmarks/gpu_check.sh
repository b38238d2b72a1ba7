#!/usr/bin/env bash
# GPU check (not CI): paper-size speed table on the GPU, then a short paper-config training run
# (224 px, bf16, the demo phantom) through the normal CLI, evaluated on both test sets.
# Usage on a GPU machine with the project's requirements installed: bash benchmarks/gpu_check.sh OUTDIR
set -euo pipefail
out=${1:-/tmp/gpu_check}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 benchmarks/models.py --device cuda --batch 64 --size 224 --threads 8 --reps 5
python3 -m mtlswin synth --out "$out/phantom" --preset demo --quiet
python3 -m mtlswin split "$out/phantom/manifest.csv" --protocol paper --out "$out/splits.csv"
common=(data.manifest="$out/phantom/manifest.csv" data.splits="$out/splits.csv" data.cache_dir="$out/cache"
        data.num_workers=8 model.pretrained=null trainer.precision=bf16-mixed output.dir="$out/runs" train.epochs=3)
start=$(date +%s)
python3 -m mtlswin train configs/paper/mtl_cls_seg_rec.yaml --set "${common[@]}" --evaluate
echo "mtl_cls_seg_rec paper config, 3 epochs: $(( $(date +%s) - start )) s"
python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print({s: {k: m[s][k] for k in ('auc','acc','f1_macro','iou') if k in m[s]} for s in m})" "$out/runs/mtl_cls_seg_rec/metrics.json"
