"""The DOS-sample part of the S-tau errors on the measured kappa(T) curves.

For each curve of `../shared/data/kappa/` (beside the project, when it exists) the S-tau
model alone (`fit_kappa(model="stau")`, a~ = 3, no sound velocities) is fitted with an ES
sample, then refitted over K independent samples of the same size
(`dos_sample_error`): the statistical part (Laplace; profile bounds for T_U), the sample
part (standard deviation of the K refits) and the total are printed as a Markdown table
and written as JSON. Cases: the default sample (x = 0.2, L = 10, 4 realizations) on all
three curves, and on Stycast 1266 also the README's small API sample (L = 6, 2
realizations); `--case FILE:L:R` (repeatable) runs other cases instead. `--precision`
float64 (default) or float32 (what the command line used when these numbers were taken).

    python experiments/fit_dos_sample_error.py [--samples K] [--precision float32|float64]
        [--case FILE:L:R ...] [--data DIR] [--out FILE.json] [--overwrite]
"""

import argparse
import math
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "kappa"
CASES = [
    ("stycast1266_olson1993.csv", 10, 4),
    ("stycast1266_olson1993.csv", 6, 2),
    ("ptfe_anderson1963_s1.csv", 10, 4),
    ("ptfe_reese1965_s1.csv", 10, 4),
]


def _g(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3g}"


def run_case(data: Path, name: str, cells: int, realizations: int, samples: int) -> dict:
    from tlsjax.fit._dos_sample_error import add_dos_sample_error
    from tlsjax.fit._fit_stau import fit_kappa
    from tlsjax.model._lattice import Sample

    t0 = time.time()
    res = fit_kappa(data / name, model="stau", sample=Sample(0.2, cells),
                    realizations=realizations, progress=False)
    add_dos_sample_error(res, samples, progress=False)
    d = res.derived
    e = d["dos_sample_error"]
    amp = "C_o_v_eff_m_per_s"
    return dict(curve=name, cells=cells, realizations=realizations, samples=samples,
                seconds=time.time() - t0, T_U=d["T_U_K"], T_U_lower=d.get("T_U_K_lower"),
                T_U_upper=d.get("T_U_K_upper"), T_U_lower_total=d.get("T_U_K_lower_total"),
                T_U_upper_total=d.get("T_U_K_upper_total"), T_U_stat=e["stat"]["T_U_K"],
                T_U_sample=e["sample"]["T_U_K"], T_U_refits=e["values"]["T_U_K"],
                C_o_v_eff=d[amp], C_o_v_eff_stat=e["stat"][amp], C_o_v_eff_sample=e["sample"][amp],
                C_o_v_eff_refits=e["values"][amp], g=res.params["g"],
                g_refits=e["values"]["g"], dominant=e["dominant"], loss=res.loss)


def table(rows) -> str:
    out = ["| curve | L, realizations | T_U (K) | 95 % profile | stat | sample (K refits) "
           "| with sample part | C_o v_eff (m/s) | its sample part | refits C_o v_eff range |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cv = r["C_o_v_eff_refits"]
        out.append(
            f"| {r['curve']} | {r['cells']}, {r['realizations']} | {_g(r['T_U'])} "
            f"| {_g(r['T_U_lower'])}-{_g(r['T_U_upper'])} | {_g(r['T_U_stat'])} "
            f"| {_g(r['T_U_sample'])} ({r['samples']}) "
            f"| {_g(r['T_U_lower_total'])}-{_g(r['T_U_upper_total'])} | {_g(r['C_o_v_eff'])} "
            f"| {_g(r['C_o_v_eff_sample'])} | {_g(min(cv))}-{_g(max(cv))} |")
    return "\n".join(out)


def _case(text: str) -> tuple[str, int, int]:
    """An argparse `type` for --case FILE:L:R (L cells per edge, R realizations)."""
    from tlsjax.cli._args import CELLS, integer

    parts = text.split(":")
    if len(parts) != 3 or not parts[0].strip():
        raise argparse.ArgumentTypeError(f"must be FILE:L:R; got {text!r}")
    values = []
    for what, word, convert in (("L", parts[1], CELLS), ("R", parts[2], integer(1))):
        try:
            values.append(convert(word))
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {what} {err}") from None
    return parts[0], *values


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import finish_parser, integer
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=integer(2, 4096), default=16, help="K refits per case (16)")
    ap.add_argument("--out", default="experiments/out/fit_dos_sample_error.json")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--precision", choices=["float32", "float64"], default="float64")
    ap.add_argument("--case", type=_case, action="append", default=None, metavar="FILE:L:R",
                    help="a curve file of --data, cells and realizations (repeatable)")
    ap.add_argument("--data", default=str(SHARED),
                    help="folder of the measured curves (default ../shared/data/kappa)")
    return finish_parser(ap)


def main(argv=None) -> None:
    ap = build_parser()
    args = ap.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        ap.error(f"argument --data: no measured curves: {args.data} is not a folder")
    cases = args.case or CASES
    missing = [name for name, _, _ in cases if not (data / name).is_file()]
    if missing:
        which = "--case" if args.case else "--data"
        ap.error(f"argument {which}: not a file of {args.data}: {', '.join(missing)}")
    run = ap.run_id(args)
    out = ap.check_output(args.out, args.overwrite, what="--out", suffixes=(".json",), run=run)
    import jax

    jax.config.update("jax_enable_x64", args.precision == "float64")
    from tlsjax._io import write_json

    rows = []
    for case in cases:
        rows.append(run_case(data, *case, args.samples))
        print(f"{case}: {rows[-1]['seconds']:.0f} s", flush=True)
    print(table(rows))
    write_json(out, dict(rows=rows, precision=args.precision), overwrite=args.overwrite, run=run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
