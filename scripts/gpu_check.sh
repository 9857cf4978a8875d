#!/usr/bin/env bash
# The GPU check: fastscratch's GPU equivalence tests and `fastscratch bench --device gpu` on
# Fashion-MNIST, on any CUDA machine that can download nothing, in under 8 minutes.
#
#   scripts/gpu_prepare.sh                       # first, where pip can download: fills ./gpu-carry
#   scripts/gpu_check.sh [OUT_DIR] [--dry-run] [--carry DIR]
#
# OUT_DIR (default $OUT when set, else ./gpu-results) receives every result as a file:
#   steps.txt            each step, its exit status and seconds (the summary, also printed)
#   carried.txt          the carried files checked (wheels, data, MANIFEST)
#   pip-install.log      installing the carried wheels into a temporary --target folder
#   imports.txt          where fastscratch and fastscratch.kernels were imported from
#   nvidia-smi.txt       nvidia-smi and nvidia-smi -q
#   pip-list.txt         every installed distribution's version (the image's and the carried)
#   gpu-libraries.txt    torch / cupy / jax versions and the GPUs each sees
#   pytest.log           python -m pytest tests/test_array_api_gpu.py tests/test_bench_gpu.py
#   bench.txt, bench.err, bench.json, bench.md   the bench table, its progress, its records
#
# What it uses: the Python on PATH ($PYTHON to choose another) with the image's PyTorch, JAX,
# CuPy, NumPy, Numba, pytest, hypothesis, threadpoolctl; the carried wheels (array-api-compat, keras
# with namex, optree, absl-py, rich; platformdirs, tqdm) installed with `pip --no-index` into a
# temporary folder on PYTHONPATH; the
# repository's source through PYTHONPATH, with a sitecustomize in that folder mapping
# fastscratch.kernels to kernels/ (pyproject installs kernels/ as fastscratch.kernels, so the
# source tree alone has no fastscratch.kernels); the carried Fashion-MNIST through
# $FASTSCRATCH_DATA.  Each step runs under `timeout` within one budget ($GPU_CHECK_SECONDS,
# default 450 s), so a hang cannot eat the machine's time.
#
# --dry-run (any machine, no GPU needed): checks the carried files, installs the wheels, checks
# the imports, and runs the bench pipeline on the embedded MNIST sample with the GPUs hidden
# (CUDA_VISIBLE_DEVICES empty, JAX on the CPU): every GPU framework a skipped row; no pytest,
# no nvidia-smi.  Exit status 1 when a carried file is missing (dry run) or a step failed.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
dry_run=0
carry="${GPU_CARRY:-$repo/gpu-carry}"
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --carry) shift; carry="${1:?--carry needs a folder}" ;;
        --carry=*) carry="${1#--carry=}" ;;
        -h|--help) sed -n '2,32p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) if [ -n "$out" ]; then echo "gpu_check: one output folder only (got $out and $1)" >&2; exit 2; fi
           out="$1" ;;
    esac
    shift
done
out="${out:-${OUT:-./gpu-results}}"
mkdir -p "$out" || { echo "gpu_check: cannot create $out" >&2; exit 2; }
out="$(cd "$out" && pwd)"
budget="${GPU_CHECK_SECONDS:-450}"
deadline=$((SECONDS + budget))
failed=0
: > "$out/steps.txt"

say() { echo "gpu_check: $*" | tee -a "$out/steps.txt"; }

# step NAME LIMIT_SECONDS LOG COMMAND...: COMMAND under timeout (at most LIMIT, and never past the
# budget's end less 15 s for the summary), its stdout and stderr into LOG ("-": left on the
# terminal); records the outcome in steps.txt.
step() {
    local name="$1" limit="$2" log="$3"
    shift 3
    local left=$((deadline - SECONDS - 15))
    [ "$limit" -gt "$left" ] && limit="$left"
    if [ "$limit" -lt 5 ]; then
        say "$name: not run, the ${budget} s budget is spent"
        failed=1
        return 1
    fi
    local started=$SECONDS status
    if [ "$log" = "-" ]; then
        timeout -k 10 "$limit" "$@"
    else
        timeout -k 10 "$limit" "$@" >> "$log" 2>&1
    fi
    status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        say "$name: TIMED OUT after ${limit} s"
    else
        say "$name: exit status $status in $((SECONDS - started)) s"
    fi
    [ "$status" -eq 0 ] || failed=1
    return "$status"
}

say "$( [ "$dry_run" = 1 ] && echo "DRY RUN: " )repository $repo, carry $carry, results $out, budget ${budget} s"
say "python: $(command -v "$python") $("$python" -c 'import sys; print(sys.version.split()[0])' 2>&1)"
say "commit: $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo 'unknown (no .git here)')"

# ------------------------------------------------------------ the carried files
tag="$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
wheels="$carry/wheels"
data="$carry/data"
missing=()
packages=()
{
    echo "carry: $carry"
    # distribution name : the wheel's file-name prefix (optree compiled: this Python's tag)
    for pair in array-api-compat:array_api_compat- keras:keras- namex:namex- absl-py:absl_py- rich:rich- \
                markdown-it-py:markdown_it_py- mdurl:mdurl- pygments:pygments- platformdirs:platformdirs- \
                tqdm:tqdm- "optree:optree-*-$tag-"; do
        dist="${pair%%:*}" prefix="${pair#*:}"
        found="$(ls "$wheels"/$prefix*.whl 2>/dev/null | head -n 1)"
        if [ -n "$found" ]; then
            echo "wheel $dist: $(basename "$found")"
            packages+=("$dist")
        else
            echo "wheel $dist: MISSING (no $prefix*.whl in $wheels)"
            missing+=("wheel $dist")
        fi
    done
    for stem in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        file="$data/fashion-mnist/$stem.gz"
        if [ -s "$file" ]; then
            echo "data $stem.gz: $(wc -c < "$file") bytes"
        else
            echo "data $stem.gz: MISSING ($file)"
            missing+=("$stem.gz")
        fi
    done
    [ -f "$carry/MANIFEST" ] && { echo "--- MANIFEST"; cat "$carry/MANIFEST"; }
} > "$out/carried.txt" 2>&1
if [ "${#missing[@]}" -gt 0 ]; then
    say "carried files: MISSING ${missing[*]} (run scripts/gpu_prepare.sh where pip can download; see carried.txt)"
    failed=1
    if [ "$dry_run" = 1 ]; then
        say "dry run: stopping, the carried files are incomplete"
        exit 1
    fi
else
    say "carried files: all present (${#packages[@]} wheels, 4 Fashion-MNIST files)"
fi

# ------------------------------------------- wheels, source and data on the path
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fastscratch-gpu-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
site="$tmp/site"
mkdir -p "$site"
if [ "${#packages[@]}" -gt 0 ]; then
    step "install carried wheels (pip --no-index --target; log: pip-install.log)" 120 "$out/pip-install.log" \
        "$python" -m pip install --quiet --no-index --no-deps --disable-pip-version-check \
        --find-links "$wheels" --target "$site" "${packages[@]}"
fi
cat > "$site/sitecustomize.py" <<EOF
"""gpu_check.sh: fastscratch.kernels from the repository's kernels/ (pyproject's package-dir mapping)."""
import importlib.util
import sys

KERNELS = "$repo/kernels"


class RepoKernels:
    """Finds fastscratch.kernels in the repository's kernels/ folder, as an installed copy would."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "fastscratch.kernels":
            return None
        return importlib.util.spec_from_file_location(name, KERNELS + "/__init__.py",
                                                      submodule_search_locations=[KERNELS])


sys.meta_path.insert(0, RepoKernels)
EOF
export PYTHONPATH="$site:$repo"
export FASTSCRATCH_DATA="$data"
export KERAS_BACKEND=jax
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX takes GPU memory as it needs it, beside torch and CuPy
export PYTHONDONTWRITEBYTECODE=1
if [ "$dry_run" = 1 ]; then
    export CUDA_VISIBLE_DEVICES="" JAX_PLATFORMS=cpu  # nothing GPU in a dry run, even on a GPU machine
fi

step "imports from the source tree (imports.txt)" 60 "$out/imports.txt" "$python" -c '
import sys
import fastscratch, fastscratch.kernels, fastscratch.kernels.numpy_kernels
from fastscratch.io import datasets
print("fastscratch", fastscratch.__version__, "from", fastscratch.__file__)
print("fastscratch.kernels from", fastscratch.kernels.__file__)
print("first meta path finder:", getattr(sys.meta_path[0], "__name__", sys.meta_path[0]))
print("fashion-mnist:", datasets.locate("fashion-mnist"))
assert datasets.locate("fashion-mnist") is not None or "--no-data" in sys.argv, "the carried Fashion-MNIST is not found"
' $( [ "${#missing[@]}" -gt 0 ] && echo --no-data )

# ------------------------------------------------------------------- the machine
if [ "$dry_run" = 0 ]; then
    if command -v nvidia-smi > /dev/null; then
        step "nvidia-smi" 30 "$out/nvidia-smi.txt" bash -c 'nvidia-smi; echo; nvidia-smi -q'
    else
        say "nvidia-smi: not on PATH"
        echo "nvidia-smi not on PATH" > "$out/nvidia-smi.txt"
    fi
    step "GPU libraries" 120 "$out/gpu-libraries.txt" "$python" -c '
for name in ("torch", "cupy", "jax", "jaxlib", "numpy", "numba", "array_api_compat", "keras"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"), "from", getattr(module, "__file__", "?"))
    except Exception as exc:
        print(name, "not importable:", type(exc).__name__, exc)
try:
    import torch
    print("torch.cuda.is_available():", torch.cuda.is_available(), "CUDA", torch.version.cuda,
          [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
except Exception as exc:
    print("torch CUDA:", type(exc).__name__, exc)
try:
    import cupy
    print("cupy.cuda.is_available():", cupy.cuda.is_available(), "runtime", cupy.cuda.runtime.runtimeGetVersion())
except Exception as exc:
    print("cupy CUDA:", type(exc).__name__, exc)
try:
    import jax
    print("jax devices:", jax.devices())
except Exception as exc:
    print("jax devices:", type(exc).__name__, exc)
try:
    from fastscratch.tools import system
    for library in ("torch", "cupy", "jax"):
        print("gpu_info", library, system.gpu_info(library))
except Exception as exc:
    print("gpu_info:", type(exc).__name__, exc)
'
fi
{ "$python" -m pip list --format=freeze --disable-pip-version-check 2>&1; echo "--- carried (--target $site)";
  "$python" -m pip list --format=freeze --disable-pip-version-check --path "$site" 2>&1; } > "$out/pip-list.txt"
say "pip versions: pip-list.txt"

# --------------------------------------------------------------- the GPU tests
# the array-API backend's GPU equivalence tests, and the GPU trainers' own (same start, same path as
# fastscratch-numpy on shared batches, device_info naming the GPU: skipped where no GPU)
tests=()
if [ -f "$repo/tests/test_array_api_gpu.py" ]; then
    tests+=(tests/test_array_api_gpu.py)
else
    say "pytest: tests/test_array_api_gpu.py is absent from this tree; going on without it"
    echo "tests/test_array_api_gpu.py is absent from this tree" > "$out/pytest.log"
fi
tests+=(tests/test_bench_gpu.py)
if [ "$dry_run" = 1 ]; then
    say "pytest ${tests[*]}: not run (dry run)"
else
    (cd "$repo" && step "pytest ${tests[*]} (log: pytest.log)" 180 "$out/pytest.log" \
        "$python" -m pytest -p no:cacheprovider -ra "${tests[@]}") || failed=1
fi

# ------------------------------------------------------------------- the bench
if [ "$dry_run" = 1 ]; then
    bench_args=(--device gpu --dataset mnist-sample --batch-sizes 128 --epochs 1 --warmup 0)
else
    bench_args=(--device gpu --dataset fashion-mnist --batch-sizes 128,512,4096,full)
fi
say "bench: fastscratch bench ${bench_args[*]}"
(cd "$out" && step "bench (bench.txt, bench.err, bench.json, bench.md)" 600 - bash -c \
    'set -o pipefail; "$0" -m fastscratch bench "$@" --json bench.json --markdown bench.md 2> bench.err | tee bench.txt' \
    "$python" "${bench_args[@]}") || failed=1
if [ -f "$out/bench.json" ]; then
    "$python" -c '
import json, sys
results = json.load(open(sys.argv[1]))["results"]
ran = [r["workload"]["framework"] + " b" + str(r["workload"]["batch_size"] or "full") for r in results if r["status"] == "ok"]
names = ", ".join(ran)
print(f"gpu_check: bench: {len(ran)} of {len(results)} results measured" + (f" ({names})" if ran else ""))
' "$out/bench.json" | tee -a "$out/steps.txt"
fi

say "done in $SECONDS s; $( [ "$failed" = 0 ] && echo 'every step passed' || echo 'a step FAILED (see steps.txt)' ); results in $out"
exit "$failed"
