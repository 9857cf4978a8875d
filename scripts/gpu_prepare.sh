#!/usr/bin/env bash
# Prepare what scripts/gpu_check.sh carries to a CUDA machine that can download nothing.
#
#   scripts/gpu_prepare.sh [CARRY_DIR]          (default: ./gpu-carry, git-ignored)
#
# Run it on a machine with the package registry (pip download) and Fashion-MNIST (found where
# fastscratch's loader looks: $FASTSCRATCH_DATA/fashion-mnist, the user cache,
# /usr/share/datasets/fashion-mnist; `fastscratch train --download` fetches it).  It writes
#
#   CARRY_DIR/wheels/                   array-api-compat, keras and the dependencies of Keras the GPU
#                                       image lacks (namex, optree, absl-py, rich and rich's), and
#                                       fastscratch's own small ones it may lack (platformdirs: the
#                                       dataset lookup; tqdm: progress bars), binary wheels only;
#                                       optree (compiled) for each Python in
#                                       $GPU_PYTHONS (default "3.10 3.11 3.12 3.13"), manylinux x86_64
#   CARRY_DIR/data/fashion-mnist/       the four .gz files, as the loader reads them ($FASTSCRATCH_DATA)
#   CARRY_DIR/MANIFEST                  what was prepared, when, and each file's SHA-256
#
# About 36 MB in all (the run tool carries at most 64 MiB with the working tree).  The folder
# must never be committed: .gitignore lists /gpu-carry/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
carry="${1:-$here/gpu-carry}"
python="${PYTHON:-python3}"
pythons="${GPU_PYTHONS:-3.10 3.11 3.12 3.13}"
# pure-Python wheels: one each fits every Python
pure=(array-api-compat keras namex absl-py rich markdown-it-py mdurl pygments platformdirs tqdm)

mkdir -p "$carry/wheels" "$carry/data/fashion-mnist"
echo "gpu_prepare: wheels into $carry/wheels"
"$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$carry/wheels" "${pure[@]}"
for version in $pythons; do
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
        --python-version "$version" --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$carry/wheels" optree
done

echo "gpu_prepare: Fashion-MNIST into $carry/data/fashion-mnist"
source_dir="$(PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$python" -c \
    "from fastscratch.io import datasets; print(datasets.locate('fashion-mnist') or '')" 2>/dev/null || true)"
if [ -z "$source_dir" ]; then
    echo "gpu_prepare: Fashion-MNIST not found; get it first (fastscratch train --dataset fashion-mnist --download)" >&2
    exit 1
fi
for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ -f "$source_dir/$stem.gz" ]; then
        cp "$source_dir/$stem.gz" "$carry/data/fashion-mnist/"
    elif [ -f "$source_dir/$stem" ]; then
        gzip -c "$source_dir/$stem" > "$carry/data/fashion-mnist/$stem.gz"
    else
        echo "gpu_prepare: $source_dir has no $stem[.gz]" >&2
        exit 1
    fi
done

{
    echo "prepared $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n) from $source_dir; pythons: $pythons"
    (cd "$carry" && find wheels data -type f | sort | xargs sha256sum)
} > "$carry/MANIFEST"
du -sh "$carry"
echo "gpu_prepare: done; carry $carry with the working tree and run scripts/gpu_check.sh there"
