#!/usr/bin/env bash
# Reproduce the two models bundled in src/napari_slideseg/data/models on a CPU,
# with the project's own commands, from the real data of ../shared/data:
#   bash scripts/train_bundled.sh            # both models (about an hour on 2 cores)
#   bash scripts/train_bundled.sh glas       # only the GlaS gland model
#   bash scripts/train_bundled.sh nuclei     # only the HoVer nuclei model
# DATA (default ../shared/data) and WORK (default bundled-work) can be set.
# Held-out images are never used for training or model selection:
#   GlaS: the 85 training images (glas_train), split by patient: patients 3, 7, 9 select
#         the epoch and give the validation Dice, the rest train; from the ImageNet
#         MobileNetV2 encoder in ../shared/weights. RESUME=1 continues a killed run.
#   nuclei: train on MoNuSeg B0-5711 G9-6363 KB-A93J, CPM-15 image02 image06 and CoNSeP
#         test_4_013 test_5_014 test_8_015 test_10_006 test_11_006; select the epoch and
#         the post-processing thresholds on CPM-15 image13 image14 and CoNSeP test_12_012
#         test_13_004; report PQ on MoNuSeg A7-A13E and CoNSeP test_1_004.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
WORK=${WORK:-bundled-work}
S=${SLIDESEG:-.venv/bin/slideseg}
EPOCHS_GLAS=${EPOCHS_GLAS:-11}
WEIGHTS=${WEIGHTS:-../shared/weights/mobilenet_v2_imagenet.safetensors}
EPOCHS_NUCLEI=${EPOCHS_NUCLEI:-10}
THREADS=${THREADS:-2}
DEST=src/napari_slideseg/data/models
what=${1:-all}
mkdir -p "$WORK/eval" "$DEST"

if [[ $what == all || $what == glas ]]; then
  # GlaS training set (85 images, ../shared/data/glas_train), split by patient (Grade.csv):
  # patients 3, 7 and 9 (20 images: 8 benign, 12 malignant... see glas_split below) are the
  # validation split that picks the epoch; the other 65 images train. GlaS test images are
  # never used here. Native resolution (20x, 0.62 um/px: GlaS images state no mpp, so
  # inference at zoom 1 is right by default), 256 px patches every 192 px.
  GW=$DATA/glas_train
  .venv/bin/python - "$GW/Grade.csv" > "$WORK/glas_split.txt" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="").read().replace("\r", "\n").splitlines()))
val_patients = {"3", "7", "9"}
for name, patient, *_ in rows[1:]:
    if name.startswith("train_"):
        print(name, "val" if patient.strip() in val_patients else "train")
PY
  train_dirs=() val_dirs=()
  while read -r n split; do
    if [[ ! -f "$WORK/glas/$n/run.json" ]] || ! grep -q '"complete": true' "$WORK/glas/$n/run.json"; then
      rm -rf "$WORK/glas/$n"
      $S patch "$GW/images/$n.jpg" --mask "$GW/masks/$n.png" --classmap scripts/glas_classmap.json \
        --mpp 0.62 --out "$WORK/glas/$n" --size 256 --stride 192 --grid pad --min-tissue 0 --quiet
    fi
    if [[ $split == val ]]; then val_dirs+=("$WORK/glas/$n"); else train_dirs+=("$WORK/glas/$n"); fi
  done < "$WORK/glas_split.txt"
  echo "glas: ${#train_dirs[@]} training and ${#val_dirs[@]} validation images"
  resume=()
  if [[ -f "$WORK/glas-run/last/training_state.json" && ${RESUME:-0} == 1 ]]; then resume=(--resume); else rm -rf "$WORK/glas-run"; fi
  $S train "${train_dirs[@]}" --val "${val_dirs[@]}" --out "$WORK/glas-run" \
    --encoder mobilenet_v2 --encoder-weights "$WEIGHTS" --decoder-channels 128,64,32,16,16 \
    --loss ce+dice --epochs "$EPOCHS_GLAS" --batch-size 8 --augment strong --scale-range 0.8 1.25 \
    --lr 1e-3 --monitor val_dice --threads "$THREADS" --name glas-gland --quiet "${resume[@]}"
  # image-level Dice on the validation images (what the held-out test measures)
  for d in "${val_dirs[@]}"; do
    n=$(basename "$d")
    rm -rf "$WORK/eval/glas-$n.zarr"
    $S predict "$GW/images/$n.jpg" --model "$WORK/glas-run/best" --out "$WORK/eval/glas-$n.zarr" \
      --mpp 0.62 --device cpu --threads "$THREADS" --quiet
    $S evaluate "$WORK/eval/glas-$n.zarr" "$GW/masks/$n.png" --classmap scripts/glas_classmap.json \
      --report "$WORK/eval/glas-$n.csv" > /dev/null
  done
  .venv/bin/python - "$WORK" > "$WORK/eval/glas-metrics.json" <<'PY'
import csv, json, sys
from pathlib import Path
w = Path(sys.argv[1])
dice = {}
for line in open(w / "glas_split.txt"):
    n, split = line.split()
    if split == "val":
        dice[n] = float(next(csv.DictReader(open(w / f"eval/glas-{n}.csv")))["dice_gland"])
vals = sorted(dice.values())
def train_time(path):  # epochs and minutes as the run's own per-epoch timings record them
    rows = list(csv.DictReader(open(path)))
    return {"epochs": len(rows),
            "train_minutes_recorded": round(sum(float(r["seconds"]) for r in rows) / 60, 1)}
print(json.dumps({
    "validation_images": len(vals),
    "validation_split": "GlaS training patients 3, 7, 9",
    "dice_gland_mean": round(sum(vals) / len(vals), 4),
    "dice_gland_worst": round(vals[0], 4),
    **train_time(w / "glas-run/metrics.csv"),
}))
PY
  cat "$WORK/eval/glas-metrics.json"
  # PACK=0: train and measure only, leave the bundled model as it is
  [[ ${PACK:-1} == 1 ]] && $S pack "$WORK/glas-run/best" --out "$DEST/glas-gland" --name glas-gland \
    --validation-metrics "$WORK/eval/glas-metrics.json" \
    --license "Weights trained by napari-slideseg on GlaS (Warwick-QU, MICCAI 2015) images: research and non-commercial use only, as the data's terms require; cite Sirinukunwattana et al. 2017. Encoder initialised from ImageNet MobileNetV2 (Google, Apache-2.0; ImageNet terms apply)." \
    --data "GlaS training set: 65 images of 13 patients (training), 20 images of patients 3, 7, 9 (epoch selection and the validation figures). 20x H&E colon at 0.62 um/px, gland vs background. No GlaS test image was used." \
    --description "Binary gland segmentation: U-Net with an ImageNet MobileNetV2 encoder (inputs scaled to [-1, 1]) at 0.62 um/px, trained on a CPU for up to $EPOCHS_GLAS epochs with stain and zoom augmentation. A research model, not a diagnostic one." \
    --reproduce "bash scripts/train_bundled.sh glas"
fi

if [[ $what == all || $what == nuclei ]]; then
  # MoNuSeg 2018 training set (30 tiles, 40x, ../shared/data/monuseg_train): 6 tiles of 6
  # organs validate (epoch, post-processing thresholds, the validation figures), 24 train,
  # with CPM-15 (image02/06 are 20x: read at zoom 2) and the 8 CoNSeP patches (the only
  # nucleus types; listed 4x). The MoNuSeg 2018 test tiles are never used here.
  MT=$DATA/monuseg_train
  val_tiles=(TCGA-38-6178-01Z-00-DX1 TCGA-AR-A1AK-01Z-00-DX1 TCGA-B0-5710-01Z-00-DX1
             TCGA-DK-A2I6-01A-01-TS1 TCGA-G9-6356-01Z-00-DX1 TCGA-RD-A8N9-01A-01-TS1)
  cut() {  # cut DIR IMAGE MASK [patch options...]: instance patches, skipped when complete
    local dir=$1 img=$2 mask=$3; shift 3
    if [[ -f "$dir/run.json" ]] && grep -q '"complete": true' "$dir/run.json"; then return; fi
    rm -rf "$dir"
    $S patch "$img" --mask "$mask" --instances --out "$dir" --size 256 --stride 256 --grid pad \
      --min-tissue 0 --quiet "$@" > /dev/null
  }
  train_dirs=() val_dirs=()
  for f in "$MT"/images/*.jpg; do
    n=$(basename "$f" .jpg)
    cut "$WORK/nuclei/$n" "$f" "$MT/inst_maps/$n.png" --mpp 0.25
    if [[ " ${val_tiles[*]} " == *" $n "* ]]; then val_dirs+=("$WORK/nuclei/$n"); else train_dirs+=("$WORK/nuclei/$n"); fi
  done
  for n in image02:2:0.5 image06:2:0.5 image13:1:0.25 image14:1:0.25; do
    IFS=: read -r name zoom mpp <<< "$n"
    cut "$WORK/nuclei/cpm-$name" "$DATA/cpm15/images/$name.png" "$DATA/cpm15/inst_maps/${name}_inst.png" \
      --zoom "$zoom" --mpp "$mpp"
    train_dirs+=("$WORK/nuclei/cpm-$name")
  done
  consep=()
  for f in "$DATA"/consep_patches/images/*.jpg; do
    n=$(basename "$f" .jpg)
    cut "$WORK/nuclei/consep-$n" "$f" "$DATA/consep_patches/inst/$n.npy" --mpp 0.25 \
      --types "$DATA/consep_patches/type_map/$n.png" --classmap consep4
    consep+=("$WORK/nuclei/consep-$n")
  done
  echo "nuclei: ${#train_dirs[@]} tiles + ${#consep[@]} typed patches train, ${#val_dirs[@]} tiles validate"
  resume=()
  if [[ -f "$WORK/nuclei-run/last/training_state.json" && ${RESUME:-0} == 1 ]]; then resume=(--resume); else rm -rf "$WORK/nuclei-run"; fi
  $S train "${train_dirs[@]}" "${consep[@]}" "${consep[@]}" "${consep[@]}" "${consep[@]}" \
    --val "${val_dirs[@]}" --kind hover --out "$WORK/nuclei-run" \
    --encoder mobilenet_v2 --encoder-weights "$WEIGHTS" --decoder-channels 48,32,16,16,8 \
    --epochs "$EPOCHS_NUCLEI" --batch-size 4 --augment strong --scale-range 0.8 1.25 --lr 1e-3 \
    --threads "$THREADS" --name hover-nuclei --quiet "${resume[@]}" ${MAX_STEPS:+--max-steps "$MAX_STEPS"}
  # post-processing thresholds chosen on the validation tiles, written into the card
  imgs=() truths=()
  for n in "${val_tiles[@]}"; do imgs+=("$MT/images/$n.jpg"); truths+=("$MT/inst_maps/$n.png"); done
  $S tune-hover "$WORK/nuclei-run/best" --images "${imgs[@]}" --truths "${truths[@]}" \
    --threads "$THREADS" --write --report "$WORK/eval/nuclei-tune.csv" --quiet
  for n in "${val_tiles[@]}"; do
    rm -rf "$WORK/eval/nuclei-$n.zarr"
    $S predict "$MT/images/$n.jpg" --model "$WORK/nuclei-run/best" --out "$WORK/eval/nuclei-$n.zarr" \
      --mpp 0.25 --device cpu --threads "$THREADS" --quiet
    $S evaluate "$WORK/eval/nuclei-$n.zarr" "$MT/inst_maps/$n.png" --instances \
      --report "$WORK/eval/nuclei-$n.csv" > /dev/null
  done
  .venv/bin/python - "$WORK" "${val_tiles[@]}" > "$WORK/eval/nuclei-metrics.json" <<'PY'
import csv, json, sys
w, tiles = sys.argv[1], sys.argv[2:]
rows = [next(csv.DictReader(open(f"{w}/eval/nuclei-{n}.csv"))) for n in tiles]
out = {"validation_tiles": len(rows),
       "validation_split": "MoNuSeg 2018 training tiles " + ", ".join(t[:12] for t in tiles)
       + " (also used to choose the post-processing thresholds)"}
for k in ("pq", "dq", "sq", "aji"):
    out[f"{k}_mean"] = round(sum(float(r[k]) for r in rows) / len(rows), 4)
epochs = list(csv.DictReader(open(f"{w}/nuclei-run/metrics.csv")))
out["epochs"] = len(epochs)
out["train_minutes_recorded"] = round(sum(float(r["seconds"]) for r in epochs) / 60, 1)
print(json.dumps(out))
PY
  cat "$WORK/eval/nuclei-metrics.json"
  # PACK=0: train and measure only, leave the bundled model as it is
  [[ ${PACK:-1} == 1 ]] && $S pack "$WORK/nuclei-run/best" --out "$DEST/hover-nuclei" --name hover-nuclei \
    --validation-metrics "$WORK/eval/nuclei-metrics.json" \
    --license "Weights trained by napari-slideseg on MoNuSeg 2018 (CC BY-NC-SA 4.0), CPM-15 (research use) and CoNSeP (research use, cite Graham et al. 2019): non-commercial research use only. Encoder initialised from ImageNet MobileNetV2 (Google, Apache-2.0; ImageNet terms apply)." \
    --data "MoNuSeg 2018 training set: 24 tiles train, 6 tiles of 6 organs validate (epoch and post-processing thresholds); CPM-15 image02, image06 (20x, read at 2x), image13, image14; the 8 CoNSeP 256 px patches with 4 nucleus types. No MoNuSeg 2018 test tile was used." \
    --description "HoVer-Net style nuclei: MobileNetV2 encoder from ImageNet (inputs scaled to [-1, 1]), NP/HV/NC decoders, 0.25 um/px, trained on a CPU for up to $EPOCHS_NUCLEI epochs with stain and zoom augmentation. The type head saw only 8 small CoNSeP patches: treat nucleus types as a demonstration." \
    --reproduce "bash scripts/train_bundled.sh nuclei"
fi
