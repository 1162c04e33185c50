"""Gathers the steps of `device_check.sh` into OUT/results.json and prints a short table.

    python experiments/_device_summary.py OUT    (OUT/w holds each step's .log, .step, .json)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _last_json_line(path: Path):
    lines = [s for s in path.read_text(errors="replace").splitlines() if s.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def gather(work: Path) -> dict:
    """{step: {rc, wall_ms, result}} from the files of `work`."""
    res = {}
    for step in sorted(work.glob("*.step")):
        row = json.loads(step.read_text())
        out = work / f"{step.stem}.json"
        log = work / f"{step.stem}.log"
        try:
            row["result"] = json.loads(out.read_text()) if out.exists() else _last_json_line(log)
        except (OSError, ValueError) as e:
            row["result"] = f"unreadable: {e}"
        if log.exists():
            row["log_tail"] = log.read_text(errors="replace").splitlines()[-5:]
        res[step.stem] = row
    return res


def table(res: dict) -> list[str]:
    """A few lines: Monte Carlo ms per sweep and speed-up on NumPy per R, pipeline and ES
    wall times."""
    lines = ["", "figures (wall times include compilation):"]
    for k in ("auto", "xla"):
        r = (res.get(f"mc_throughput_{k}") or {}).get("result")
        if isinstance(r, dict):
            rows = ", ".join(f"R={x['replicas']}: {x['ms_per_sweep']:.2f} ms ({x['speedup']:.1f}x "
                             f"NumPy, same={x['identical_sweep']:.3f})" for x in r["rows"])
            lines.append(f"  MC sweep L={r['cells']} kernel={r['kernel']} on {r['backend']}: {rows}")
    for name in ("mc_paper_1", "mc_paper_V"):
        r = (res.get(name) or {}).get("result")
        if isinstance(r, dict):
            tu = r["T_U_over_E_tau"]
            lines.append(f"  tlsjax mc L={r.get('cells')} V={r.get('realizations')}: "
                         f"{res[name]['wall_ms'] / 1e3:.1f} s wall, T_U/<E_tau> = {tu['mc']:.3f}"
                         f" (ES {tu['es']:.3f}), E/spin {r['energy_per_spin_mean']:.3f} K")
    for name in ("es_1", "es_R", "es_big"):
        r = (res.get(name) or {}).get("result")
        if isinstance(r, dict):
            lines.append(f"  tlsjax es L={r['cells']} V={r['realizations']} <N>="
                         f"{r['n_sites_mean']:.3g}: {res[name]['wall_ms'] / 1e3:.1f} s wall, "
                         f"{r['seconds']:.1f} s inside")
    r = (res.get("mc_big") or {}).get("result")
    if isinstance(r, dict):
        how = "K stored" if r["stored"] else "rows on the fly"
        lines.append(f"  MC N={r['n_sites']} {how}: {r['ms_per_sweep']:.0f} ms per sweep "
                     f"of 16 replicas (2500 sweeps: {2.5 * r['ms_per_sweep']:.0f} s)")
    return lines


def main() -> None:
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "w").is_dir():
        sys.exit("usage: python experiments/_device_summary.py OUT (the folder of "
                 "device_check.sh, with its w/ steps)")
    out = Path(sys.argv[1])
    res = gather(out / "w")
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(out / "results.json")
    print("\n".join(table(res)))


if __name__ == "__main__":
    main()
