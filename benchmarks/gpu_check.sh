#!/usr/bin/env bash
# The one prepared GPU session (run by hand on a CUDA machine; not part of CI). Everything goes
# to $OUT (default gpu-logs/), one file per step, so a session that runs out of time still
# brings back what it measured. Order: cheapest and most informative first.
#
#   1. device, torch, CUDA;
#   2. a torch.profiler table of one sa2net-paper batch, and the forward's MP/s for each remedy
#      (bf16, channels_last, cudnn.benchmark, torch.compile, CUDA graphs), each vs fp32;
#   3. the host ceiling (zero-cost predictor, 8192² zarr slide) with 1, 4 and 16 workers;
#   4. end to end on the 8192² zarr slide: sa2net-paper (bf16, 512² tiles, batch 16) and the
#      bundled model with every setting automatic, seconds per stage;
#   5. end-to-end ÷ bare forward on a 4096² slide, the bundled model, device auto (= cuda);
#   6. the model, engine and inference tests with CUDA visible (gpu-marked ones included), then
#      the segment / finetune widget tests under Xvfb if it is installed.
#
# Needs what setup.cfg installs. On a machine without a package index, put wheels in .whl/
# first (see DEVELOPING.md); they are installed into /tmp/site.
set -u -o pipefail
OUT=${OUT:-gpu-logs}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD/src
fi
export PYTHONUNBUFFERED=1
SCRATCH=${SCRATCH:-/tmp/sa2net-bench}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
    | tee -a "$OUT/device.txt"

timeout 150 python3 benchmarks/gpu_profile.py --model sa2net-paper --size 512 --batch 16 \
    2>&1 | tee "$OUT/profile.txt" | tail -8

timeout 120 python3 benchmarks/bench_inference.py --host --workers 1 4 16 --scratch "$SCRATCH" \
    2>&1 | tee "$OUT/host.txt" | tail -6

timeout 150 python3 benchmarks/bench_inference.py --cuda --scratch "$SCRATCH" \
    2>&1 | tee "$OUT/end_to_end.txt" | tail -4

timeout 120 python3 benchmarks/bench_inference.py --end-to-end --device cuda --repeats 1 \
    --scratch "$SCRATCH" 2>&1 | tee "$OUT/ratio.txt" | tail -3

timeout 180 python3 -m pytest -q -p no:cacheprovider -o addopts="" \
    ${GPU_TESTS:-tests/model tests/engine tests/inference} 2>&1 | tee "$OUT/tests.txt" | tail -5
if command -v xvfb-run >/dev/null 2>&1; then
    QT_API=pyside6 timeout 180 xvfb-run -a python3 -m pytest -q -p no:cacheprovider \
        -o addopts="" tests/widgets/test_segment.py tests/widgets/test_finetune.py \
        2>&1 | tee "$OUT/widgets.txt" | tail -3
fi
