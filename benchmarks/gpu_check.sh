#!/usr/bin/env bash
# One prepared GPU session (run by hand on a CUDA machine; not part of CI).
#
#   1. the CPU-marked and GPU-marked tests of model, engine and inference with CUDA visible
#      (device "auto" resolves to cuda there, so the whole inference suite exercises the CUDA path);
#   2. pipeline ÷ bare forward and pipeline ÷ MONAI with sa2net-paper in bf16 on 4096²;
#   3. end-to-end MP/s of sa2net-paper in bf16 on an 8192² zarr slide, seconds per stage.
#
# Needs what setup.cfg installs. On a machine without a package index, put wheels in .whl/ first
# (see DEVELOPING.md); they are installed into /tmp/site. Logs go to $OUT (or ./gpu-logs).
set -u -o pipefail
OUT=${OUT:-gpu-logs}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD/src
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
    | tee -a "$OUT/device.txt"

timeout 180 python3 -m pytest -q -p no:cacheprovider -o addopts="" \
    ${GPU_TESTS:-tests/model tests/engine tests/inference} 2>&1 | tee "$OUT/tests.txt" | tail -25

timeout 120 python3 benchmarks/bench_inference.py --device cuda --model sa2net-paper \
    --size 4096 --tile 512 --overlap 64 --batch 16 --repeats 3 --rss-sizes \
    2>&1 | tee "$OUT/throughput.txt"

timeout 120 python3 benchmarks/bench_inference.py --cuda --size 8192 --tile 512 --overlap 64 \
    --batch 16 2>&1 | tee "$OUT/end_to_end.txt"
