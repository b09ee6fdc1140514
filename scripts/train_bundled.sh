#!/usr/bin/env bash
# Reproduce the two models bundled in src/napari_slideseg/data/models on a CPU,
# with the project's own commands, from the real data of ../shared/data:
#   bash scripts/train_bundled.sh            # both models (about an hour on 2 cores)
#   bash scripts/train_bundled.sh glas       # only the GlaS gland model
#   bash scripts/train_bundled.sh nuclei     # only the HoVer nuclei model
# DATA (default ../shared/data) and WORK (default bundled-work) can be set.
# Held-out images are never used for training or model selection:
#   GlaS: train on train_1 train_2 train_12 train_13 testB_1 at half resolution, select
#         on testA_2, report Dice on testA_1 and testA_12.
#   nuclei: train on MoNuSeg B0-5711 G9-6363 KB-A93J, CPM-15 image02 image06 and CoNSeP
#         test_4_013 test_5_014 test_8_015 test_10_006 test_11_006; select the epoch and
#         the post-processing thresholds on CPM-15 image13 image14 and CoNSeP test_12_012
#         test_13_004; report PQ on MoNuSeg A7-A13E and CoNSeP test_1_004.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
WORK=${WORK:-bundled-work}
S=${SLIDESEG:-.venv/bin/slideseg}
EPOCHS_GLAS=${EPOCHS_GLAS:-40}
EPOCHS_NUCLEI=${EPOCHS_NUCLEI:-100}
THREADS=${THREADS:-2}
DEST=src/napari_slideseg/data/models
what=${1:-all}
mkdir -p "$WORK/eval" "$DEST"

if [[ $what == all || $what == glas ]]; then
  # Half resolution (1.24 um/px): a 256 px patch spans 317 um, several glands with the
  # stroma between them; zoom augmentation 0.5-2x because gland size varies ~2x between
  # GlaS images.
  for n in train_1 train_2 train_12 train_13 testB_1 testA_2; do
    rm -rf "$WORK/glas/$n"
    $S patch "$DATA/glas/images/$n.png" --mask "$DATA/glas/masks/${n}_mask.png" --classmap scripts/glas_classmap.json \
      --out "$WORK/glas/$n" --size 256 --stride 64 --grid pad --zoom 0.5 --min-tissue 0 --quiet
  done
  rm -rf "$WORK/glas-run"
  $S train "$WORK"/glas/{train_1,train_2,train_12,train_13,testB_1} --val "$WORK/glas/testA_2" \
    --out "$WORK/glas-run" --encoder resnet18 --encoder-depth 4 --decoder-channels 128,64,32,16 --norm group \
    --loss ce+dice --epochs "$EPOCHS_GLAS" --batch-size 8 --augment strong --scale-range 0.5 2 --lr 1e-3 \
    --threads "$THREADS" --name glas-gland --quiet
  rows=()
  for n in testA_1 testA_12; do
    rm -rf "$WORK/eval/glas-$n.zarr"
    $S predict "$DATA/glas/images/$n.png" --model "$WORK/glas-run/best" --out "$WORK/eval/glas-$n.zarr" \
      --tile 256 --overlap 64 --block 1024 --zoom 0.5 --device cpu --quiet
    $S evaluate "$WORK/eval/glas-$n.zarr" "$DATA/glas/masks/${n}_mask.png" --classmap scripts/glas_classmap.json \
      --report "$WORK/eval/glas-$n.csv" > /dev/null
  done
  .venv/bin/python - "$WORK" > "$WORK/eval/glas-metrics.json" <<'PY'
import csv, json, sys
w = sys.argv[1]
out = {}
for n in ("testA_1", "testA_12"):
    row = next(csv.DictReader(open(f"{w}/eval/glas-{n}.csv")))
    out[f"dice_gland_{n}"] = round(float(row["dice_gland"]), 4)
out["dice_gland_mean"] = round(sum(out.values()) / 2, 4)
print(json.dumps(out))
PY
  cat "$WORK/eval/glas-metrics.json"
  $S pack "$WORK/glas-run/best" --out "$DEST/glas-gland" --name glas-gland --mpp 1.24 \
    --metrics "$WORK/eval/glas-metrics.json" \
    --license "Weights trained by napari-slideseg on GlaS (Warwick-QU, MICCAI 2015) images: research and non-commercial use only, as the data's terms require; cite Sirinukunwattana et al. 2017." \
    --data "GlaS: train_1, train_2, train_12, train_13, testB_1 (training), testA_2 (model selection); testA_1, testA_12 held out. 20x H&E colon (0.62 um/px) read at half resolution (1.24 um/px), gland vs background." \
    --description "Binary gland segmentation (U-Net, ResNet-18 encoder cut to 4 stages, GroupNorm, random init) at 1.24 um/px, trained on a CPU for $EPOCHS_GLAS epochs on 5 images with stain and 0.5-2x zoom augmentation: a demonstration model, not a diagnostic one." \
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
