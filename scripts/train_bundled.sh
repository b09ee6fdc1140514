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
EPOCHS_GLAS=${EPOCHS_GLAS:-14}
WEIGHTS=${WEIGHTS:-../shared/weights/mobilenet_v2_imagenet.safetensors}
EPOCHS_NUCLEI=${EPOCHS_NUCLEI:-100}
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
      --device cpu --threads "$THREADS" --quiet
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
print(json.dumps({
    "validation_images": len(vals),
    "validation_split": "GlaS training patients 3, 7, 9",
    "dice_gland_mean": round(sum(vals) / len(vals), 4),
    "dice_gland_worst": round(vals[0], 4),
}))
PY
  cat "$WORK/eval/glas-metrics.json"
  # PACK=0: train and measure only, leave the bundled model as it is
  [[ ${PACK:-1} == 1 ]] && $S pack "$WORK/glas-run/best" --out "$DEST/glas-gland" --name glas-gland \
    --metrics "$WORK/eval/glas-metrics.json" \
    --license "Weights trained by napari-slideseg on GlaS (Warwick-QU, MICCAI 2015) images: research and non-commercial use only, as the data's terms require; cite Sirinukunwattana et al. 2017. Encoder initialised from ImageNet MobileNetV2 (Google, Apache-2.0; ImageNet terms apply)." \
    --data "GlaS training set: 65 images of 13 patients (training), 20 images of patients 3, 7, 9 (epoch selection and the validation figures). 20x H&E colon at 0.62 um/px, gland vs background. No GlaS test image was used." \
    --description "Binary gland segmentation: U-Net with an ImageNet MobileNetV2 encoder (inputs scaled to [-1, 1]) at 0.62 um/px, trained on a CPU for up to $EPOCHS_GLAS epochs with stain and zoom augmentation. A research model, not a diagnostic one." \
    --reproduce "bash scripts/train_bundled.sh glas"
fi

if [[ $what == all || $what == nuclei ]]; then
  for id in TCGA-B0-5711-01Z-00-DX1 TCGA-G9-6363-01Z-00-DX1 TCGA-KB-A93J-01A-01-TS1; do
    $S patch "$DATA/monuseg/images/$id.png" --mask "$DATA/monuseg/inst_maps/${id}_inst.png" --instances \
      --out "$WORK/nuclei/$id" --size 256 --stride 256 --grid pad --min-tissue 0 --overwrite skip --quiet
  done
  # CPM-15: the two 20x tiles brought to 40x (zoom 2) for training; the two 40x tiles for
  # model selection and post-processing choice.
  for n in image02:2 image06:2 image13:1 image14:1; do
    $S patch "$DATA/cpm15/images/${n%:*}.png" --mask "$DATA/cpm15/inst_maps/${n%:*}_inst.png" --instances \
      --out "$WORK/nuclei/cpm-${n%:*}" --size 256 --stride 256 --grid pad --zoom "${n#*:}" --min-tissue 0 \
      --overwrite skip --quiet
  done
  for n in test_4_013 test_5_014 test_8_015 test_10_006 test_11_006 test_12_012 test_13_004; do
    $S patch "$DATA/consep_patches/images/$n.jpg" --mask "$DATA/consep_patches/inst/$n.npy" --instances \
      --types "$DATA/consep_patches/type_map/$n.png" --classmap consep4 \
      --out "$WORK/nuclei/$n" --size 256 --stride 128 --min-tissue 0 --overwrite skip --quiet
  done
  # MoNuSeg and CPM patches are listed 1x, CoNSeP (types) patches 4x so the type head sees them often.
  consep=("$WORK"/nuclei/{test_4_013,test_5_014,test_8_015,test_10_006,test_11_006})
  rm -rf "$WORK/nuclei-run"
  $S train "$WORK"/nuclei/TCGA-{B0-5711-01Z-00-DX1,G9-6363-01Z-00-DX1,KB-A93J-01A-01-TS1} \
    "$WORK"/nuclei/cpm-{image02,image06} "${consep[@]}" "${consep[@]}" "${consep[@]}" "${consep[@]}" \
    --val "$WORK"/nuclei/{cpm-image13,cpm-image14,test_12_012,test_13_004} --kind hover \
    --out "$WORK/nuclei-run" --encoder mobilenet_v2 --decoder-channels 32,32,16,16,8 \
    --epochs "$EPOCHS_NUCLEI" --batch-size 4 --augment strong --scale-range 0.8 1.25 --lr 2e-3 \
    --threads "$THREADS" --name hover-nuclei --quiet
  # Post-processing thresholds chosen on the selection images (never the held-out ones),
  # written into the checkpoint's card.
  $S tune-hover "$WORK/nuclei-run/best" \
    --images "$DATA"/cpm15/images/{image13,image14}.png "$DATA"/consep_patches/images/{test_12_012,test_13_004}.jpg \
    --truths "$DATA"/cpm15/inst_maps/{image13,image14}_inst.png "$DATA"/consep_patches/inst/{test_12_012,test_13_004}.npy \
    --threads "$THREADS" --write --report "$WORK/eval/nuclei-tune.csv"
  for pair in "monuseg/images/TCGA-A7-A13E-01Z-00-DX1.png monuseg/inst_maps/TCGA-A7-A13E-01Z-00-DX1_inst.png A7-A13E" \
              "consep_patches/images/test_1_004.jpg consep_patches/inst/test_1_004.npy test_1_004"; do
    set -- $pair
    rm -rf "$WORK/eval/nuclei-$3.zarr"
    $S predict "$DATA/$1" --model "$WORK/nuclei-run/best" --out "$WORK/eval/nuclei-$3.zarr" \
      --tile 256 --overlap 64 --block 1024 --device cpu --quiet
    $S evaluate "$WORK/eval/nuclei-$3.zarr" "$DATA/$2" --instances \
      --report "$WORK/eval/nuclei-$3.csv" > /dev/null
  done
  .venv/bin/python - "$WORK" > "$WORK/eval/nuclei-metrics.json" <<'PY'
import csv, json, sys
w = sys.argv[1]
out = {}
for n in ("A7-A13E", "test_1_004"):
    row = next(csv.DictReader(open(f"{w}/eval/nuclei-{n}.csv")))
    for k in ("pq", "dq", "sq", "aji"):
        out[f"{k}_{n}"] = round(float(row[k]), 4)
print(json.dumps(out))
PY
  cat "$WORK/eval/nuclei-metrics.json"
  $S pack "$WORK/nuclei-run/best" --out "$DEST/hover-nuclei" --name hover-nuclei --mpp 0.25 \
    --metrics "$WORK/eval/nuclei-metrics.json" \
    --license "Weights trained by napari-slideseg on MoNuSeg 2018 (CC BY-NC-SA 4.0) and CoNSeP (research use, cite Graham et al. 2019): non-commercial research use only." \
    --data "MoNuSeg B0-5711, G9-6363, KB-A93J (40x, instances, no types), CPM-15 image02, image06 (20x, read at 2x zoom; no types; no stated licence, research use) and 5 CoNSeP 256 px patches (40x, 4 nucleus types); CPM-15 image13, image14 and CoNSeP test_12_012, test_13_004 for model selection and post-processing thresholds; MoNuSeg A7-A13E and CoNSeP test_1_004 held out." \
    --description "HoVer-Net style nuclei (MobileNetV2 encoder, NP/HV/NC decoders, random init) trained on a CPU for $EPOCHS_NUCLEI epochs with stain and zoom augmentation. The type head saw only 5 small CoNSeP patches: treat nucleus types as a demonstration." \
    --reproduce "bash scripts/train_bundled.sh nuclei"
fi
