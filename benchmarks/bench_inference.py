"""Tiled inference benchmarks on the path users run (by hand; not part of the test suite).

Every figure is printed with what it is compared against, measured in the same run:

``--end-to-end``  ``segment(slide, out=....zarr)`` with every setting automatic (the bundled model,
                  the default path) against the bare batched forward pass of the same tiles on
                  the same device: ``end-to-end MP/s ÷ bare forward MP/s`` (goal >= 0.85).
``--host``        the whole chunked path (scan → read → normalize → blend → maps → instances →
                  OME-Zarr) on an 8192² zarr slide with a zero-cost predictor, seconds per stage,
                  for 1 and 2 host workers, ending in ``host ceiling: N MP/s`` (goal >= 8 on 2
                  cores).
``--rss``         peak RSS and wall time of ``sa2net segment SLIDE --format zarr`` (own process,
                  its ``VmHWM``) on a dense 4096² slide and a 16384² slide whose only tissue is
                  the same 4096² in its centre; the objects of that centre against the dense
                  slide's (goal: <= 1.5 GB, sparse <= 1.3 × dense RSS and <= 3 × dense time).
``--wide``        peak RSS of the same path with a zero-cost predictor (tiles and chunks chosen as
                  for the bundled model) on a dense zarr slide ``--wide-shape`` (default 3072 ×
                  65536): what waits between chunk rows grows with the width.
``--cluster``     a 4096² TIFF on a 2-process ``LocalCluster`` (1 thread each) against local
                  threads (goal <= 1.1 ×, identical labels).
``--throughput``  in-memory tiled prediction ÷ bare forward and ÷ MONAI (a width-8 model).
``--cuda``        the paper model in bf16 on a CUDA device: bare forward and end to end.

The slides are real nuclei on a camera-noise canvas (``benchmarks/slides.py``).

Examples::

    OMP_NUM_THREADS=2 python benchmarks/bench_inference.py --end-to-end --host --rss
    python benchmarks/bench_inference.py --cluster
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from slides import write_slide  # noqa: E402


def _slide(args: argparse.Namespace, kind: str, size: int, suffix: str = ".tif") -> Path:
    return write_slide(kind, size, Path(args.scratch) / f"{kind}_{size}{suffix}", args.tissue)


def _clock() -> tuple[dict[str, float], callable]:
    """Seconds per progress stage of a job (level-1 stages)."""
    stages: dict[str, float] = {}
    state = {"stage": "plan", "t": time.perf_counter()}

    def on_progress(event) -> None:
        if event.stage != state["stage"]:
            now = time.perf_counter()
            stages[state["stage"]] = stages.get(state["stage"], 0.0) + now - state["t"]
            state.update(stage=event.stage, t=now)

    def close() -> dict[str, float]:
        now = time.perf_counter()
        stages[state["stage"]] = stages.get(state["stage"], 0.0) + now - state["t"]
        return stages

    on_progress.close = close
    return stages, on_progress


def bare_forward(plan, tiles: list, predictor) -> float:
    """Seconds of ``model(batch)`` + activation over ``tiles``, prepared beforehand."""
    import torch

    shape = (min(plan.tiles.tile, plan.shape[0]), min(plan.tiles.tile, plan.shape[1]))
    batches = [predictor.prepare(tiles[k : k + predictor.batch_size], shape)
               for k in range(0, len(tiles), predictor.batch_size)]  # fmt: skip
    tensors = [predictor.to_device(b) for b in batches]
    start = time.perf_counter()
    with torch.inference_mode():
        for x in tensors:
            torch.softmax(predictor.model(x).float(), 1)
    if plan.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def end_to_end(args: argparse.Namespace) -> None:
    from napari_sa2net._progress import run_job
    from napari_sa2net.inference import compute, segment_job
    from napari_sa2net.inference.plan import plan_run
    from napari_sa2net.inference.predictor import Predictor
    from napari_sa2net.inference.scan import scan
    from napari_sa2net.inference.settings import SegmentSettings
    from napari_sa2net.io import open_image

    slide = _slide(args, "dense", args.size)
    out = Path(args.scratch) / "e2e.zarr"
    settings = SegmentSettings(out=out, overwrite=True, device=args.device)
    # The same tiles, forwarded bare with the same model, device and batch.
    plan = plan_run(str(slide), settings)
    found = scan(plan.source.data, plan.tiles, plan.net.normalization, True)
    image = np.asarray(open_image(str(slide)).data)
    tiles = [image[t.slices] for t in plan.tiles if t.index not in found.skip]
    # Built and run on the engine's compute thread, as the engine's own passes are: a forward
    # pass in another thread would give the process a second OpenMP team (inference.compute).
    predictor = compute.call(Predictor, plan.net, plan.device, plan.amp, plan.batch_size,
                             stats=found.stats)  # fmt: skip
    mpx = args.size**2 / 1e6
    # The machine's speed drifts by 10-20 %: alternate the two, compare each pair and the best.
    pairs = []
    for _ in range(args.repeats):
        stages, on_progress = _clock()
        start = time.perf_counter()
        result = run_job(segment_job(str(slide), settings), on_progress)
        seconds = time.perf_counter() - start
        on_progress.close()
        bare = compute.call(bare_forward, plan, tiles, predictor)
        pairs.append((seconds, bare))
        print(f"  run: end to end {seconds:.1f} s, bare forward {bare:.1f} s, ratio "
              f"{bare / seconds:.3f}; stages: "
              + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))  # fmt: skip
    best_e2e, best_bare = min(p[0] for p in pairs), min(p[1] for p in pairs)
    print(f"end to end, {args.size}² dense slide -> OME-Zarr, every setting automatic "
          f"({len(tiles)} tiles of {plan.tiles.tile}², overlap {plan.tiles.overlap}, batch "
          f"{plan.batch_size}, {plan.device}, {result.n_objects} objects)")  # fmt: skip
    print(f"  end to end best: {best_e2e:.1f} s = {mpx / best_e2e:.3f} MP/s; bare forward best "
          f"{best_bare:.1f} s = {mpx / best_bare:.3f} MP/s")  # fmt: skip
    print(f"  end-to-end MP/s ÷ bare forward MP/s = {best_bare / best_e2e:.3f} best of each, "
          f"{np.mean([b / e for e, b in pairs]):.3f} mean of pairs (goal >= 0.85)")  # fmt: skip


def host(args: argparse.Namespace) -> None:
    from napari_sa2net._progress import run_job
    from napari_sa2net.inference import plan as plan_module
    from napari_sa2net.inference import segment_job
    from napari_sa2net.inference.predictor import ZeroCostPredictor

    slide = _slide(args, "dense", args.host_size, ".zarr")
    mpx = args.host_size**2 / 1e6
    original = plan_module.local_workers
    warm = segment_job(np.zeros((512, 512), np.uint16), device="cpu", tile=512, overlap=128,
                       predictor=lambda stats: ZeroCostPredictor(3, 4, stats))  # fmt: skip
    run_job(warm)  # imports and the model load, once, outside the timed runs
    for workers in args.workers:
        plan_module.local_workers = lambda w=workers: w  # the run's host threads
        out = Path(args.scratch) / f"host{workers}.zarr"

        def make(stats, w=workers):
            return ZeroCostPredictor(3, 4, stats, concurrency=w)

        stages, on_progress = _clock()
        start = time.perf_counter()
        job = segment_job(str(slide), out=out, overwrite=True, device="cpu", tile=512,
                          overlap=128, predictor=make)  # fmt: skip
        result = run_job(job, on_progress)
        seconds = time.perf_counter() - start
        on_progress.close()
        print(f"host path, {args.host_size}² zarr slide -> OME-Zarr, zero-cost predictor, "
              f"{workers} worker(s), {result.n_objects} objects")  # fmt: skip
        print("  seconds per stage: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
        print(f"  host ceiling: {mpx / seconds:.1f} MP/s ({workers} worker(s); goal >= 8 on 2)")
    plan_module.local_workers = original


def peak_rss_kib() -> int:
    """This process's peak resident size in KiB, counted from its own ``exec``.

    ``getrusage``'s ``ru_maxrss`` is not: at ``exec`` Linux carries the parent's high-water mark
    into the child's (a child of a process holding 1.49 GB reported 1.49 GB, its ``VmHWM`` 9
    MB), so after ``--end-to-end`` in the same call both slides reported the parent's 1.46 GB.
    ``VmHWM`` belongs to the new address space.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def rss_child(path: str, out: str) -> None:
    """Subprocess body: the CLI's default path on one slide; prints JSON of what it measured."""
    from napari_sa2net.cli import main

    start = time.perf_counter()
    code = main(["segment", path, "--out", out, "--format", "zarr", "--overwrite", "--quiet"])
    peak = peak_rss_kib()
    print(json.dumps({"code": code, "seconds": time.perf_counter() - start, "peak_kib": peak}))


def _child(path: Path, out: Path, body: str = "rss_child") -> dict:
    """Run ``body(path, out)`` of this module in a fresh process; the JSON it printed last."""
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_inference as b; "
            f"b.{body}({str(path)!r}, {str(out)!r})")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"run on {path} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    info = json.loads(lines[-1])
    info["line"] = lines[-2] if len(lines) > 1 else ""
    return info


def _matched(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """Objects of ``a``, of ``b``, and pairs matched one to one at IoU >= 0.5."""
    from napari_sa2net.engine.metrics import instance_f1

    scores = instance_f1(b, a, iou_threshold=0.5)
    return int(a.max()), int(b.max()), int(scores.tp)


def rss(args: argparse.Namespace) -> None:
    from napari_sa2net.io import read_labels

    dense = _slide(args, "dense", args.tissue)
    sparse = _slide(args, "sparse", args.sparse_size)
    runs = {}
    folder = Path(args.scratch) / "rss"
    for name, path in (("dense", dense), ("sparse", sparse)):
        runs[name] = _child(path, folder)
        info = runs[name]
        size = args.tissue if name == "dense" else args.sparse_size
        print(f"{name} {size}² -> OME-Zarr (sa2net segment, all automatic): peak RSS "
              f"{info['peak_kib'] / 2**20:.2f} GiB ({info['peak_kib'] * 1024 / 1e9:.2f} GB), "
              f"{info['seconds']:.1f} s; {info['line']}")  # fmt: skip
    d, s = runs["dense"], runs["sparse"]
    print(f"sparse ÷ dense: peak RSS {s['peak_kib'] / d['peak_kib']:.2f} (goal <= 1.3), "
          f"time {s['seconds'] / d['seconds']:.2f} (goal <= 3)")  # fmt: skip
    lo = (args.sparse_size - args.tissue) // 2
    a = np.asarray(read_labels(folder / f"{dense.stem}.zarr")[0])
    centre = read_labels(folder / f"{sparse.stem}.zarr")[0]
    b = np.asarray(centre[lo : lo + args.tissue, lo : lo + args.tissue])
    n_dense, n_centre, matched = _matched(a, b)
    f1 = 2 * matched / max(1, n_dense + n_centre)
    print(f"objects: dense {n_dense}, sparse slide's centre {n_centre}, matched one to one at "
          f"IoU >= 0.5: {matched} (F1 {f1:.4f})")  # fmt: skip


def wide_child(path: str, out: str) -> None:
    """Subprocess body: ``segment`` with a zero-cost predictor, all else automatic; prints JSON."""
    from napari_sa2net._progress import run_job
    from napari_sa2net.inference import segment_job
    from napari_sa2net.inference.predictor import ZeroCostPredictor

    start = time.perf_counter()
    job = segment_job(path, out=out, overwrite=True, device="cpu",
                      predictor=lambda stats: ZeroCostPredictor(3, 1, stats))  # fmt: skip
    result = run_job(job)
    plan = result.plan
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_kib": peak_rss_kib(),
                      "tile": plan.tile, "overlap": plan.overlap, "chunks": plan.chunks,
                      "objects": result.n_objects}))  # fmt: skip


def wide(args: argparse.Namespace) -> None:
    height, width = args.wide_shape
    path = write_slide("dense", width, Path(args.scratch) / f"dense_{height}x{width}.zarr",
                       height=height)  # fmt: skip
    out = Path(args.scratch) / "wide" / "labels.zarr"
    out.parent.mkdir(parents=True, exist_ok=True)
    info = _child(path, out, "wide_child")
    print(f"dense {height} × {width} zarr -> OME-Zarr, zero-cost predictor, tiles and chunks "
          f"automatic: peak RSS {info['peak_kib'] / 2**20:.2f} GiB "
          f"({info['peak_kib'] * 1024 / 1e9:.2f} GB), {info['seconds']:.1f} s; tiles of "
          f"{info['tile']}², overlap {info['overlap']}, chunks {info['chunks']}, "
          f"{info['objects']} objects")  # fmt: skip


def cluster(args: argparse.Namespace) -> None:
    import distributed

    from napari_sa2net._progress import run_job
    from napari_sa2net.inference import segment_job
    from napari_sa2net.inference.api import labels_of

    slide = _slide(args, "dense", args.tissue)
    out = Path(args.scratch) / "cluster"

    def timed(name: str, **kwargs):
        stages, on_progress = _clock()
        start = time.perf_counter()
        job = segment_job(str(slide), out=out / f"{name}.zarr", overwrite=True, device="cpu",
                          **kwargs)  # fmt: skip
        result = run_job(job, on_progress)
        seconds = time.perf_counter() - start
        on_progress.close()
        print(
            f"  {name}: {seconds:.1f} s; " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        )
        return result, seconds

    local, local_s = timed("local")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cl,  # fmt: skip
        distributed.Client(cl) as client,
    ):
        remote, remote_s = timed("processes", scheduler=client)
    same = np.array_equal(labels_of(local), labels_of(remote))
    print(f"{args.tissue}² TIFF: local threads {local_s:.1f} s, 2 single-threaded worker "
          f"processes {remote_s:.1f} s: ratio {remote_s / local_s:.2f} (goal <= 1.1); labels "
          f"identical: {same}")  # fmt: skip


def throughput(args: argparse.Namespace) -> None:
    import torch

    from napari_sa2net.inference.pipeline import predict_in_memory
    from napari_sa2net.inference.predictor import Predictor
    from napari_sa2net.inference.tiling import TilePlan
    from napari_sa2net.model import SA2Net, SA2NetConfig
    from napari_sa2net.normalization import Normalization

    torch.manual_seed(0)
    model = SA2Net(SA2NetConfig("bench-w8", 8), 1, 3).eval()
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    image = (ndi.gaussian_filter(rng.random((1024, 1024)), 2) * 4000)[..., None]
    stats = Normalization().statistics(image)
    plan = TilePlan(image.shape[:2], 256, 64)
    predictor = Predictor(model, "cpu", batch_size=4, stats=stats)
    tiles = [image[t.slices] for t in plan]
    batches = [torch.from_numpy(predictor.prepare(tiles[k : k + 4], (256, 256)))
               for k in range(0, len(tiles), 4)]  # fmt: skip
    times: dict[str, float] = {}
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        with torch.inference_mode():
            for x in batches:
                torch.softmax(model(x), 1)
        times["bare"] = min(times.get("bare", 1e9), time.perf_counter() - start)
        start = time.perf_counter()
        predict_in_memory(image, plan, predictor)
        times["pipeline"] = min(times.get("pipeline", 1e9), time.perf_counter() - start)
    print(f"in memory 1024², width-8 model, {len(plan)} tiles of 256², best of {args.repeats}")
    print(f"  pipeline MP/s ÷ bare forward MP/s = {times['bare'] / times['pipeline']:.3f}")


def cuda(args: argparse.Namespace) -> None:
    import torch

    from napari_sa2net._progress import run_job
    from napari_sa2net.inference import segment_job
    from napari_sa2net.model import create_model

    if not torch.cuda.is_available():
        raise SystemExit("--cuda needs a CUDA device")
    slide = _slide(args, "dense", args.host_size, ".zarr")
    for name in ("sa2net-paper", None):
        model = create_model("sa2net-paper", 1, 3) if name else None
        kwargs = {"device": "cuda", "amp": True, "tile": 512, "overlap": 64, "batch_size": 16,
                  "model": model} if name else {"device": "cuda"}  # fmt: skip
        stages, on_progress = _clock()
        start = time.perf_counter()
        result = run_job(segment_job(str(slide), out=Path(args.scratch) / "gpu.zarr",
                                     overwrite=True, **kwargs), on_progress)  # fmt: skip
        seconds = time.perf_counter() - start
        on_progress.close()
        mpx = args.host_size**2 / 1e6
        print(f"{name or 'bundled model'} on {torch.cuda.get_device_name()}: {mpx / seconds:.2f}"
              f" MP/s end to end, {result.n_objects} objects")  # fmt: skip
        print("  seconds per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag in ("end-to-end", "host", "rss", "wide", "cluster", "throughput", "cuda"):
        parser.add_argument(f"--{flag}", action="store_true")
    parser.add_argument("--size", type=int, default=4096, help="end-to-end slide edge")
    parser.add_argument("--host-size", type=int, default=8192, help="host / cuda slide edge")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tissue", type=int, default=4096, help="dense slide / sparse centre")
    parser.add_argument("--sparse-size", type=int, default=16384)
    parser.add_argument("--wide-shape", type=int, nargs=2, default=[3072, 65536],
                        metavar=("HEIGHT", "WIDTH"), help="the --wide slide")  # fmt: skip
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2, help="alternated runs")
    parser.add_argument("--scratch", default="/tmp/sa2net-bench", help="slides and outputs")
    args = parser.parse_args()
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    chosen = [f for f in ("end_to_end", "host", "rss", "wide", "cluster", "throughput", "cuda")
              if getattr(args, f)] or ["end_to_end"]  # fmt: skip
    for name in chosen:
        globals()[name](args)


if __name__ == "__main__":
    main()
