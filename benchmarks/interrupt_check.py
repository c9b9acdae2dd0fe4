"""Ctrl-C during ``sa2net segment``: exit 130 every time, nothing left behind (run by hand).

Starts the command on a slide N times, sends SIGINT 16-19 s in, and prints each exit status,
how long the exit took, what is left in the output folder and the last line of stderr.

    python benchmarks/interrupt_check.py SLIDE.tif --tries 10
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("slide", type=Path)
    parser.add_argument("--tries", type=int, default=10)
    args = parser.parse_args()
    codes = []
    for i in range(args.tries):
        out = Path(tempfile.mkdtemp(prefix="sa2net-interrupt-"))
        main_call = "import sys; from napari_sa2net.cli import main; sys.exit(main())"
        command = [sys.executable, "-c", main_call, "segment", str(args.slide),
                   "--out", str(out), "--format", "zarr", "--quiet"]  # fmt: skip
        # A shell's background job ignores SIGINT, and a child would inherit that: restore it.
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, preexec_fn=lambda: signal.signal(
                                     signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        time.sleep(16 + i % 4)
        sent = time.time()
        child.send_signal(signal.SIGINT)
        _, err = child.communicate()
        left = sorted(p.name for p in out.iterdir())
        codes.append(child.returncode)
        print(f"try {i}: exit {child.returncode} {time.time() - sent:.1f} s after SIGINT, "
              f"left {left}, stderr {err.strip()[-120:]!r}", flush=True)  # fmt: skip
        shutil.rmtree(out, ignore_errors=True)
    print(f"{codes.count(130)} of {len(codes)} runs exited 130")


if __name__ == "__main__":
    main()
