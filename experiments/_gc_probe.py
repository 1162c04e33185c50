"""Run a benchmark script with Python's garbage collections timed.

    python experiments/_gc_probe.py SCRIPT [ARGS...]

runs `SCRIPT ARGS...` as `__main__` (as `python SCRIPT ARGS...` would) and, when it ends,
writes one line to stderr: `GC_PROBE` and a JSON object with the seconds spent in
collections (all, and generation 2 alone) and their counts. A full (generation-2)
collection of a process holding JAX and tlsjax takes tens of milliseconds, and whether one
falls inside a timed call depends on every object allocated before it: a benchmark that
compares two codes records them so that such a collection is seen, not mistaken for
slower compiled code (`bench_cpu_before_after.py`).
"""

from __future__ import annotations

import gc
import json
import runpy
import sys
import time
from pathlib import Path

PREFIX = "GC_PROBE "


def main() -> None:
    start: list[float] = [0.0]
    totals = dict(seconds=0.0, collections=0, gen2_seconds=0.0, gen2_collections=0)

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            start[0] = time.perf_counter()
            return
        spent = time.perf_counter() - start[0]
        totals["seconds"] += spent
        totals["collections"] += 1
        if info["generation"] == 2:
            totals["gen2_seconds"] += spent
            totals["gen2_collections"] += 1

    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = str(Path(script).resolve().parent)  # as `python SCRIPT` sets it
    gc.callbacks.append(callback)
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        gc.callbacks.remove(callback)
        print(PREFIX + json.dumps(totals), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
