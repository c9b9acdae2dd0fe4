"""Where the forward pass spends its time on an accelerator, and what each known remedy gains.

Run by hand (part of ``benchmarks/gpu_check.sh``; smoke-test it on a CPU with ``--device cpu
--size 128 --batch 2``):

1. a ``torch.profiler`` table of one batch (the kernels by self time, grouped so LayerNorm,
   interpolation, depthwise and pointwise convolutions, layout conversions and copies show), and
2. MP/s of the bare batched forward for each variant, measured in the same run, one after the
   other, each against the plain fp32 baseline: bf16 autocast, ``channels_last``,
   ``cudnn.benchmark``, ``torch.compile`` (skipped with its error where it fails), CUDA graphs of
   the fixed tile shape.

    python benchmarks/gpu_profile.py --model sa2net-paper --size 512 --batch 16
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(step, x: torch.Tensor, device: torch.device, iters: int) -> float:
    """Megapixels per second of ``step(x)`` (best of ``iters`` after two warm-up calls)."""
    with torch.inference_mode():
        step(x)
        step(x)
        _sync(device)
        best = float("inf")
        for _ in range(iters):
            start = time.perf_counter()
            step(x)
            _sync(device)
            best = min(best, time.perf_counter() - start)
    return x.shape[0] * x.shape[2] * x.shape[3] / 1e6 / best


def variants(model, device: torch.device, amp: torch.dtype | None):
    """``(name, prepare_input, step)`` for each remedy, ``step`` built lazily."""

    def autocast():
        if amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp)

    def plain(x):
        return torch.softmax(model(x).float(), 1)

    def mixed(x):
        with autocast():
            return torch.softmax(model(x).float(), 1)

    def last_model():
        return model.to(memory_format=torch.channels_last)

    yield "fp32", lambda x: x, lambda: plain
    yield f"{amp} autocast" if amp else "autocast (none here)", lambda x: x, lambda: mixed
    yield (
        "+ channels_last",
        lambda x: x.to(memory_format=torch.channels_last),
        lambda: (last_model(), mixed)[1],
    )
    if device.type == "cuda":

        def benchmark_mode():
            torch.backends.cudnn.benchmark = True
            return mixed

        yield (
            "+ cudnn.benchmark",
            lambda x: x.to(memory_format=torch.channels_last),
            benchmark_mode,
        )

    def compiled():
        fast = torch.compile(model, mode="max-autotune-no-cudagraphs")

        def step(x):
            with autocast():
                return torch.softmax(fast(x).float(), 1)

        return step

    yield "+ torch.compile", lambda x: x.to(memory_format=torch.channels_last), compiled
    if device.type == "cuda":

        def graphed():
            static = torch.zeros(BATCH_SHAPE, device=device).to(memory_format=torch.channels_last)
            with torch.inference_mode():
                for _ in range(2):
                    mixed(static)
                torch.cuda.synchronize(device)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    out = mixed(static)

            def step(x):
                static.copy_(x)
                graph.replay()
                return out

            return step

        yield "+ CUDA graph", lambda x: x.to(memory_format=torch.channels_last), graphed


BATCH_SHAPE: tuple[int, ...] = ()


def profile(model, x: torch.Tensor, device: torch.device, amp) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if device.type == "cuda" else []
    )
    context = torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext()
    with torch.inference_mode(), context:
        model(x)
        _sync(device)
        with torch_profile(activities=activities) as prof:
            model(x)
            _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=25))


def main() -> None:
    global BATCH_SHAPE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sa2net-paper")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    from napari_sa2net.model import create_model

    device = torch.device(args.device)
    amp = None
    if device.type == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    BATCH_SHAPE = (args.batch, 1, args.size, args.size)
    x = torch.rand(BATCH_SHAPE, device=device)
    model = create_model(args.model, 1, 3).to(device).eval()
    profile(model, x, device, amp)
    baseline = None
    for name, prepare, build in variants(model, device, amp):
        try:
            mps = rate(build(), prepare(x), device, args.iters)
        except Exception as err:  # a remedy that does not run here is reported, not fatal
            print(f"{name:24s} failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
            continue
        baseline = baseline or mps
        print(f"{name:24s} {mps:8.2f} MP/s  ({mps / baseline:.2f} × fp32)")


if __name__ == "__main__":
    main()
