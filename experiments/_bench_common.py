"""Helpers shared by the benchmarks: timing, peak memory, one realization, subprocess cases.

Throughput convention of every benchmark: "pairs per second" is N (N - 1) / t, the
ordered pairs of one full ES reduction (each pair is visited once in each of the two
O(N^2) passes).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    """Peak resident memory of this process in MB (Linux ru_maxrss is in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def median_time(fn, repeats: int, *, warmup: bool = False) -> float:
    """Median wall time of `fn()` over `repeats` calls (after one untimed call if `warmup`)."""
    if warmup:
        fn()
    ts = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def pairs_per_second(n: int, seconds: float) -> float:
    return n * (n - 1) / seconds


def draw_realization(cells: int, seed: int = 0, x: float = 0.2):
    """(realization, coupling seed words, h normals) of fcc (x, L = cells) from `seed`,
    split exactly as `tlsjax.simulate` splits its key."""
    import jax

    import tlsjax as tj
    from tlsjax.model._couplings import seed_from_key

    kp, kc, kh = jax.random.split(jax.random.key(seed), 3)
    real = tj.Sample(x, cells=cells).draw(kp)
    return real, seed_from_key(kc), jax.random.normal(kh, (real.capacity,))


def run_case(script: str, case: str, cells: int, repeats: int,
             devices: int | None = None, extra: list[str] | None = None,
             code: Path | None = None, gc_probe: bool = False) -> dict:
    """Run `script --case CASE --cells L --repeats R [extra...]` in a fresh process; its last
    stdout line is the case's JSON. `devices` emulates that many CPU devices; `code` is the
    root of an older code (`extract_commit`), first on the path and the working folder;
    `gc_probe` runs it under `_gc_probe.py` and adds the process's garbage-collection
    times as `"gc"`."""
    env = os.environ.copy()
    if devices is not None:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={devices}").strip()
        env["JAX_PLATFORMS"] = "cpu"
    if code is not None:
        env.update(PYTHONPATH=str(code), JAX_PLATFORMS="cpu")
    probe = [str(Path(__file__).resolve().parent / "_gc_probe.py")] if gc_probe else []
    cmd = [sys.executable, *probe, script, "--case", case, "--cells", str(cells), "--repeats",
           str(repeats), *(extra or [])]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=code)
    what = f"{Path(script).name} --case {case} --cells {cells}"
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-3000:]}")
    try:
        result = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{what} printed no JSON line:\n{out.stdout[-1000:]}") from None
    if gc_probe:
        from _gc_probe import PREFIX

        lines = [ln for ln in out.stderr.splitlines() if ln.startswith(PREFIX)]
        if not lines:
            raise RuntimeError(f"{what}: no garbage-collection record on stderr")
        result["gc"] = json.loads(lines[-1][len(PREFIX):])
    return result


def resolve_commit(commit: str, needs=()) -> str | None:
    """The full hash of `commit` in this repository, or None where it is not a commit or
    lacks one of the files `needs` (paths from the repository root)."""
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet",
                            f"{commit}^{{commit}}"], capture_output=True, text=True)
    if found.returncode != 0:
        return None
    full = found.stdout.strip()
    for path in needs:
        if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{full}:{path}"],
                          capture_output=True).returncode != 0:
            return None
    return full


def working_tree_state() -> dict:
    """The commit of this checkout and whether its code (tlsjax/, the experiment scripts,
    data/) differs from it; outputs such as experiments/figures/ do not count. `None` where
    git cannot tell (no repository, no git)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                              capture_output=True, text=True)
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                 "--untracked-files=no", "--", "tlsjax",
                                 ":(glob)experiments/*.py", "data"],
                                capture_output=True, text=True)
    except OSError:
        return dict(commit=None, modified=None)
    if head.returncode != 0 or status.returncode != 0:
        return dict(commit=None, modified=None)
    return dict(commit=head.stdout.strip(), modified=bool(status.stdout.strip()))


def extract_commit(commit: str, folder, paths=("tlsjax",)) -> Path:
    """The files under `paths` of this repository's `commit` (`git archive`), in `folder`,
    for a benchmark of older code (put `folder` first on PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, *paths],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return Path(folder)


def code_state_over(start: dict) -> dict:
    """The code state of a run that took `start = working_tree_state()` when it began:
    its commit, and modified where the code differed at the start or the end or changed in
    between (`None` where git could not tell)."""
    end = working_tree_state()
    if None in (start["modified"], end["modified"]):
        return dict(commit=start["commit"], modified=None)
    return dict(commit=start["commit"],
                modified=start["modified"] or end["modified"] or start != end)


def finish_run(json_path: Path, meta: dict, results: dict, failed: list[str], *,
               overwrite: bool, run: str) -> int:
    """Write `{"meta", "results"}` to `json_path` (atomically), say so, and name the runs in
    `failed`; the exit status (1 if any failed)."""
    from tlsjax._io import write_json

    write_json(json_path, dict(meta=meta, results=results), overwrite=overwrite, run=run)
    print(f"wrote {json_path} (load average at the end {meta['load_average']})")
    if failed:
        print(f"failed: {', '.join(failed)} (their errors are in {json_path})", file=sys.stderr)
        return 1
    return 0
