#!/usr/bin/env bash
# The one prepared GPU check, for a session lent a GPU (CI never has one). Through the device tool:
#     run(command="bash scripts/device_check.sh", timeout_s=480)
# It prints the device, runs the CUDA tests (tests/test_cuda.py: the meta-gradient against the CPU's;
# tests/test_coverage.py: an exact resume on the device), then times one outer step of every preset on
# CUDA at hopper's (11, 3) and walker2d's (17, 6) dims, beside the published code's naive step (--reference); the JSON lines go to
# $OUT/bench_distill.jsonl (or runs/device/ without $OUT). Goal: a paper-preset outer step under 20 ms.
# It needs only what the device image holds (torch, numpy, pyyaml, h5py, scikit-learn, tqdm, pytest): obd
# runs from this checkout, and nothing here imports gymnasium, MuJoCo, Minari or Ray.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-runs/device}"
mkdir -p "$out"
python3 -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device")'
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_coverage.py -k cuda 2>&1 | tee "$out/test_cuda.log"
for preset in paper fast small; do
    for dims in "11 3" "17 6"; do
        set -- $dims
        python3 scripts/bench_distill.py --preset "$preset" --obs-dim "$1" --act-dim "$2" --device cuda \
            --warmup 5 --steps 20 --reference --json | tee -a "$out/bench_distill.jsonl"
    done
done
