#!/usr/bin/env bash
# GPU check (not CI), about 6 minutes on one H200 (12.5 min if every step hit its limit):
# the speed tables of issue 13 at 224 px, batch 64.
#   1. benchmarks/models.py: train/inference img/s of swin and MTL (shared / separate decoder), float32.
#   2. benchmarks/train.py, swin and MTL cls+seg+rec (paper configs): model only and end to end (real
#      `mtlswin train` steps on a phantom; CPU loader with workers, and in bf16 also the device cache), in float32 (+ the authors' model if a checkout is given), bf16-mixed,
#      and bf16-mixed + torch.compile; bf16 / compiled outputs checked against float32 eager; projected hours of
#      the paper's 12 rows.
#   3. A short paper-config training run through the CLI (bf16, device cache), evaluated on both test sets.
#   4. Demo runs packed on the GPU: `reproduce --runs-per-gpu N` (N = 1, 2, 4, 8; N seeds of swin, 2 epochs, on the
#      phantom of step 1), demo runs per hour at each N.
# Each step has its own time limit; a failed or timed-out step is reported and the next one runs.
#
# Usage:  bash benchmarks/gpu_check.sh OUTDIR [AUTHORS_CHECKOUT]
#         (AUTHORS_CHECKOUT: a clone of ko-hirata/Swin-Multitask; their rows are skipped without it)
# Dry run on a CPU (tiny sizes, every command once, a minute or two):
#         MTLSWIN_CPU_SMOKE=1 bash benchmarks/gpu_check.sh OUTDIR
set -uo pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # run from the repository root: our package without an install
out=${1:-/tmp/gpu_check}
authors=${2:-${MTLSWIN_AUTHORS:-}}
py=${PYTHON:-python3}
mkdir -p "$out"
status=0

step() {  # step SECONDS LABEL COMMAND...: run with a time limit (x $scale), report failure, keep going
  local limit=$(( $1 * scale )) label=$2
  shift 2
  echo -e "\n===== $label"
  local start=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  if [ $rc -eq 124 ]; then echo "===== $label: TIMED OUT after ${limit}s"; status=1
  elif [ $rc -ne 0 ]; then echo "===== $label: FAILED (exit $rc)"; status=1
  else echo "===== $label: $((SECONDS - start)) s"; fi
}

if [ -n "${MTLSWIN_CPU_SMOKE:-}" ]; then  # the limits are the GPU's; a shared CPU gets 20x by default
  device=cpu scale=${MTLSWIN_TIMEOUT_SCALE:-20}
  models_args=(--device cpu --batch 1 --size 224 --reps 1 --threads 2 --speed-only)
  bench=(--cpu-smoke --steps 2 --compile-backend eager)
  slices=60 size=64 epochs=1
  train_set=(model.img_size=32 model.patch_size=2 model.window_size=2 model.embed_dim=8 "model.depths=[2,2,2]"
             "model.num_heads=[1,2,2]" data.batch_size=4 data.num_workers=0 trainer.accelerator=cpu
             trainer.precision=32-true train.checkpoint_every_n_steps=0 trainer.limit_train_batches=2
             trainer.limit_val_batches=2)
else
  device=cuda scale=${MTLSWIN_TIMEOUT_SCALE:-1}
  nvidia-smi --query-gpu=name,memory.total --format=csv
  models_args=(--device cuda --batch 64 --size 224 --reps 5 --threads 8 --speed-only)
  bench=(--device cuda --img-size 224 --batch-size 64 --steps 20 --warmup 5 --workers 8)
  slices=1400 size=256 epochs=2
  train_set=(data.num_workers=8 trainer.precision=bf16-mixed)
fi
authors_arg=()
if [ -n "$authors" ]; then authors_arg=(--authors "$authors"); fi

step 120 "phantom ($slices slices) and paper splits" bash -c "
  $py -m mtlswin synth --out '$out/phantom' --preset demo --slices $slices --size $size --quiet &&
  $py -m mtlswin split '$out/phantom/manifest.csv' --protocol paper --out '$out/phantom/splits.csv'"
step 60 "models.py: float32 speed table" $py benchmarks/models.py "${models_args[@]}"
step 90 "train.py: float32 (authors' model: ${authors:-not given})" \
  $py benchmarks/train.py "${bench[@]}" --precision 32 --data "$out/phantom" "${authors_arg[@]}"
step 120 "train.py: bf16-mixed, end to end with the CPU loader and with the device cache" \
  $py benchmarks/train.py "${bench[@]}" --precision bf16-mixed --device-cache --data "$out/phantom"
step 240 "train.py: bf16-mixed + torch.compile" \
  $py benchmarks/train.py "${bench[@]}" --precision bf16-mixed --compile --data "$out/phantom"

common=(data.manifest="$out/phantom/manifest.csv" data.splits="$out/phantom/splits.csv" data.cache_dir="$out/cache"
        data.device_cache=true model.pretrained=null output.dir="$out/runs" train.epochs=$epochs "${train_set[@]}")
sets=()
for kv in "${common[@]}"; do sets+=(--set "$kv"); done  # one --set per override
step 120 "mtl_cls_seg_rec paper config, $epochs epochs ($device), then evaluate" \
  $py -m mtlswin train configs/paper/mtl_cls_seg_rec.yaml "${sets[@]}" --evaluate
if [ -f "$out/runs/mtl_cls_seg_rec/metrics.json" ]; then
  $py -c "import json,sys; m=json.load(open(sys.argv[1])); print({s: {k: m[s][k] for k in ('auc','acc','f1_macro','iou') if k in m[s]} for s in m})" "$out/runs/mtl_cls_seg_rec/metrics.json"
fi

# 4. N demo runs side by side on each GPU: runs per hour (training, evaluation and the rest of reproduce included)
pack_epochs=${MTLSWIN_PACK_EPOCHS:-2}
pack_set=(--set trainer.accelerator="$device" --set train.epochs=$pack_epochs --set data.num_workers=0)
packs=(1 2 4 8)
if [ -n "${MTLSWIN_CPU_SMOKE:-}" ]; then  # the dry run: two sizes, two batches
  packs=(1 2) pack_set+=(--set trainer.limit_train_batches=2 --set trainer.limit_val_batches=2)
fi
for n in "${packs[@]}"; do
  seeds=$(seq -s, 0 $((n - 1)))
  start=$SECONDS
  step 300 "demo, $n run(s) per GPU ($n seeds of swin, $pack_epochs epochs)" \
    $py -m mtlswin reproduce --preset demo --manifest "$out/phantom/manifest.csv" --out "$out/pack-$n" --rows swin \
    --seeds "$seeds" --runs-per-gpu $n "${pack_set[@]}"
  secs=$((SECONDS - start))
  echo "----- $n run(s) per GPU: $n runs in $secs s, $(( n * 3600 / (secs > 0 ? secs : 1) )) demo runs per hour"
done
exit $status
