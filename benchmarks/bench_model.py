"""Forward GFLOP/s and training throughput of every SA2-Net configuration on this machine.

Run by hand (not part of the tests)::

    OMP_NUM_THREADS=2 python benchmarks/bench_model.py            # CPU-sized default, ~3 min
    python benchmarks/bench_model.py --device cuda --batch 8 --full

Next to each configuration it prints the same machine's GFLOP/s on a plain 3×3 convolution
(64 → 64 channels at the benchmark size, measured in the same run), so the ratio says how well
the network uses the hardware. On a CPU the ratio uses work per CPU-second of this process,
which other load on a shared machine disturbs far less than wall-clock rates. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` (counted on the ``meta`` device; 1 MAC = 2 FLOPs;
convolutions and matrix products only).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from napari_sa2net.model import CONFIGS, create_model, resolve_device, use_fast_layout


def build(name: str, args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    """The configuration on ``device``, in the memory layout the engine gives it (``--layout``)."""
    model = create_model(name, args.in_channels, args.classes).to(device)
    return use_fast_layout(model, device) if args.layout == "engine" else model


def count_flops(build: Callable[[], torch.nn.Module], shape: tuple[int, ...]) -> int:
    """FLOPs of one eval forward pass of ``build()`` on an input of ``shape`` (on ``meta``)."""
    with torch.device("meta"):
        module = build().eval()
        x = torch.empty(shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return counter.get_total_flops()


@dataclass(frozen=True)
class Timing:
    """Seconds of one call: wall clock, and CPU time of this process (all its threads)."""

    wall: float
    cpu: float

    def rate(self, amount: float, on_cpu: bool) -> tuple[float, float]:
        """``amount`` per wall second, and per CPU second on a CPU device (else per wall s)."""
        return amount / self.wall, amount / (self.cpu if on_cpu else self.wall)


def timed(step: Callable[[], object], device: torch.device, iters: int) -> Timing:
    """Fastest of ``iters`` timed calls of ``step``, after one warm-up call.

    The fastest call rather than the mean, because other load on a shared machine only ever adds
    time (the usual ``timeit`` practice). CPU time is reported too: on a machine whose cores are
    busy with other work, work per CPU-second still compares configurations fairly.
    """
    best = Timing(float("inf"), float("inf"))
    for _ in range(iters + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = Timing(
            min(best.wall, time.perf_counter() - wall), min(best.cpu, time.process_time() - cpu)
        )
    return best


def conv_baseline(args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """GFLOP per wall second and per CPU second of a plain 64 → 64 3×3 convolution."""
    shape = (args.batch, 64, args.size, args.size)
    flops = count_flops(lambda: torch.nn.Conv2d(64, 64, 3, padding=1), shape)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device)
    x = torch.randn(shape, device=device)
    with torch.no_grad():
        timing = timed(lambda: conv(x), device, args.iters)
    return timing.rate(flops / 1e9, device.type == "cpu")


def forward_rate(name: str, args: argparse.Namespace, device: torch.device) -> tuple[float, ...]:
    """(GFLOP per forward pass, GFLOP per wall s, GFLOP per CPU s) in eval mode."""
    shape = (args.batch, args.in_channels, args.size, args.size)
    flops = count_flops(lambda: create_model(name, args.in_channels, args.classes), shape)
    model = build(name, args, device).eval()
    x = torch.randn(shape, device=device)
    with torch.no_grad():
        timing = timed(lambda: model(x), device, args.iters)
    return (flops / 1e9, *timing.rate(flops / 1e9, device.type == "cpu"))


def training_rate(
    name: str, args: argparse.Namespace, device: torch.device
) -> tuple[float, float]:
    """Samples per wall s and per CPU s of forward (aux heads) + backward + Adam step."""
    model = build(name, args, device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(args.batch, args.in_channels, args.size, args.size, device=device)
    target = torch.randint(0, args.classes, (args.batch, args.size, args.size), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        outputs = model(x, aux=True)
        if args.classes == 1:
            binary = target.float()
            loss = sum(F.binary_cross_entropy_with_logits(o[:, 0], binary) for o in outputs)
        else:
            loss = sum(F.cross_entropy(o, target) for o in outputs)
        loss.backward()
        optimizer.step()

    return timed(step, device, args.train_iters).rate(args.batch, device.type == "cpu")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3, help="timed calls (best kept)")
    parser.add_argument("--train-iters", type=int, default=2, help="timed training steps")
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--full", action="store_true", help="also time training of sa2net-paper on a CPU"
    )
    parser.add_argument(
        "--layout", choices=("engine", "nchw"), default="engine",
        help="engine: the layout inference and training use (channels-last on a CPU)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads, "
        f"input {args.batch}×{args.in_channels}×{args.size}×{args.size}, {args.classes} classes, "
        f"layout {args.layout}"
    )
    conv_wall, conv_cpu = conv_baseline(args, device)
    print(f"plain 3×3 conv 64→64: {conv_wall:.1f} GFLOP/s wall, {conv_cpu:.1f} GFLOP/CPU-s")
    print(
        f"{'config':<14}{'GFLOP/fwd':>10}{'GFLOP/s':>9}{'GFLOP/CPU-s':>12}{'vs conv':>9}"
        f"{'train samples/s':>17}{'samples/CPU-s':>15}"
    )
    for name in args.configs:
        gflop, wall, per_cpu = forward_rate(name, args, device)
        line = f"{name:<14}{gflop:>10.1f}{wall:>9.1f}{per_cpu:>12.1f}{per_cpu / conv_cpu:>9.2f}"
        if name == "sa2net-paper" and device.type == "cpu" and not args.full:
            print(f"{line}{'skipped (--full)':>17}")
            continue
        samples_wall, samples_cpu = training_rate(name, args, device)
        print(f"{line}{samples_wall:>17.2f}{samples_cpu:>15.2f}")


if __name__ == "__main__":
    main()
