"""float32 against float64: `tlsjax fit kappa` on the measured curves in both precisions.

Runs the command line (in this process, as `tlsjax.cli.main`) on three cases of
`../shared/data/kappa/` (beside the project, when it exists), each with `--precision 64`
and `--precision 32`: PTFE (Reese 1965) with the defaults (model chosen by AICc, 4 DOS-sample
refits), Stycast 1266 with `--model stau --dos-samples 0`, and Stycast 1266 with the
defaults. Prints the table of docs/explanation/fit-uncertainties.md ("Precision") and the
float32 - float64 differences in units of the float64 error where the data determine a
quantity; writes the numbers shown (not the measured data) as JSON.

    python experiments/fit_precision.py [--data DIR] [--out FILE.json] [--overwrite]
"""

import argparse
import contextlib
import io
import json
import math
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "kappa"
#: (label, curve file, extra arguments of `tlsjax fit kappa`)
CASES = [
    ("PTFE Reese, default", "ptfe_reese1965_s1.csv", []),
    ("Stycast 1266, --model stau --dos-samples 0", "stycast1266_olson1993.csv",
     ["--model", "stau", "--dos-samples", "0"]),
    ("Stycast 1266, default", "stycast1266_olson1993.csv", []),
]
BITS = (64, 32)


def _float(v) -> float | None:
    """A number of the JSON ("inf" and "nan" are written as words), or None."""
    return None if v is None else float(v)


def _value(d: dict, name: str) -> tuple[float | None, float | None]:
    """(value, 1-sigma error; inf where undetermined) of a fitted parameter, or Nones."""
    if name not in d["params"] or name not in d["free"]:
        return None, None
    return _float(d["params"][name]), _float(d["stderr"].get(name))


def _profile(d: dict, name: str) -> list[float | None] | None:
    """The 95 % profile-likelihood bounds (lower, upper; None: none in range) of a parameter."""
    b = (d.get("profile") or {}).get("bounds", {}).get(name)
    return None if b is None else [_float(b.get("lower")), _float(b.get("upper"))]


def extract(d: dict) -> dict:
    """The numbers of one fit's JSON that the table shows."""
    chosen = next(c for c in d["model_selection"]["candidates"] if c["chosen"]) \
        if d.get("model_selection") else None
    stau = d["model"] == "stau"
    return dict(
        model=d["model_label"], weight=chosen["weight"] if chosen else None,
        bits=d["meta"]["precision_bits"], init=d["meta"]["init"],
        g=_value(d, "g"), J0=_value(d, "J0"),
        amplitude=_value(d, "kv" if stau else "Cv"), amplitude_name="kv" if stau else "Cv",
        A_R_v_eff2=(_float(d.get("A_R_v_eff2_s2_m")), _float(d.get("A_R_v_eff2_s2_m_err"))),
        C_o_v_eff=(_float(d["C_o_v_eff_m_per_s"]), _float(d.get("C_o_v_eff_m_per_s_err"))),
        T_U=(_float(d.get("T_U_K")), _float(d.get("T_U_K_err"))),
        T_U_lower=_float(d.get("T_U_K_lower")), T_U_upper=_float(d.get("T_U_K_upper")),
        profile={n: _profile(d, n) for n in ("g", "J0", "kv")},
        undetermined=d.get("undetermined") or [], rms_log_residual=d["rms_log_residual"],
        aicc=d["aicc"], converged=d["converged"])


def run_case(data: Path, name: str, extra: list[str], bits: int, out: Path) -> dict:
    """One `tlsjax fit kappa` run, its JSON written to `out`; its report is kept out of
    this script's output."""
    from tlsjax.cli import main as cli

    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(["fit", "kappa", str(data / name), *extra, "--precision", str(bits),
                    "--no-progress", "--json", str(out)])
    if code != 0:
        raise SystemExit(f"`tlsjax fit kappa {name} {' '.join(extra)}` failed ({code})")
    return dict(extract(json.loads(out.read_text())), seconds=time.time() - t0)


def _num(pair, digits: int = 3, bounds=None) -> str:
    """A (value, error) pair: "v ± e" (the error to 2 digits), "v (undetermined)" where the
    error is infinite, "v" where there is none; "-" where there is no value. Then the
    profile `bounds` where given."""
    v, e = (None if x is None else float(x) for x in pair)  # the JSON writes inf as "inf"
    if v is None:
        return "-"
    text = f"{v:.{digits}g}"
    if e is not None:
        text += f" ± {e:.2g}" if math.isfinite(e) else " (undetermined)"
    if bounds and any(b is not None for b in bounds):
        lo, hi = (f"{float(b):.3g}" if b is not None else "none" for b in bounds)
        text = text.removesuffix(")") + "; " if text.endswith(")") else text + " ("
        text += f"profile {lo} to {hi})"
    return text


def table(rows: list[dict]) -> str:
    out = ["| case | bits | chosen model (AICc weight) | g | J_o (K) | kv or C v_eff (m/s) "
           "| A_R v_eff^2 (s^2 m) | C_o v_eff (m/s) | T_U (K) | T_U 95 % lower (K) "
           "| T_U 95 % upper (K) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        weight = f" ({r['weight']:.2f})" if r["weight"] is not None else ""
        kv = r["amplitude_name"] == "kv"
        amp = ("kv " if kv else "C v_eff ") + _num(r["amplitude"], 5,
                                                    r["profile"]["kv"] if kv else None)
        out.append(f"| {r['case']} | {r['bits']} | {r['model']}{weight} "
                   f"| {_num(r['g'], 3, r['profile']['g'])} "
                   f"| {_num(r['J0'], 3, r['profile']['J0'])} | {amp} "
                   f"| {_num(r['A_R_v_eff2'], 5)} | {_num(r['C_o_v_eff'], 5)} | {_num(r['T_U'])} "
                   f"| {_num((r['T_U_lower'], None))} | {_num((r['T_U_upper'], None))} |")
    return "\n".join(out)


def differences(rows: list[dict]) -> dict:
    """(float32 - float64) / (float64 error) of each quantity the data determine (finite
    error in both precisions, the same model), per case."""
    out = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        r64, r32 = (next(r for r in rows if r["case"] == case and r["bits"] == b) for b in BITS)
        if r64["model"] != r32["model"]:
            continue
        for key in ("g", "J0", "amplitude", "A_R_v_eff2", "C_o_v_eff", "T_U"):
            (v64, e64), (v32, e32) = r64[key], r32[key]
            if None not in (v64, v32, e64, e32) and math.isfinite(e64) and math.isfinite(e32) \
                    and e64 > 0:
                out.setdefault(case, {})[key] = abs(v32 - v64) / e64
    return out


def build_parser() -> argparse.ArgumentParser:
    from tlsjax.cli._args import finish_parser
    from tlsjax.cli._main import Parser

    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(SHARED),
                    help="folder of the measured curves (default ../shared/data/kappa)")
    ap.add_json_out("experiments/out/fit_precision.json")
    return finish_parser(ap)


def main(argv=None) -> None:
    ap = build_parser()
    args, run, out = ap.parse_with_json_out(argv)
    data = Path(args.data)
    if not data.is_dir():
        ap.error(f"argument --data: no measured curves: {args.data} is not a folder")
    missing = sorted({name for _, name, _ in CASES if not (data / name).is_file()})
    if missing:
        ap.error(f"argument --data: not a file of {args.data}: {', '.join(missing)}")
    from tlsjax import load_curve

    for name in sorted({name for _, name, _ in CASES}):  # every curve read before any fit
        try:
            load_curve(data / name)
        except (ValueError, OSError) as err:
            ap.error(f"argument --data: {name}: {err}")
    from tlsjax._io import write_json

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for i, (label, name, extra) in enumerate(CASES):
            for bits in BITS:
                rows.append(dict(case=label, curve=name, arguments=extra,
                                 **run_case(data, name, extra, bits,
                                            Path(folder) / f"case{i}_{bits}.json")))
                print(f"{label}, float{bits}: {rows[-1]['seconds']:.1f} s", flush=True)
    print(table(rows))
    diff = differences(rows)
    for case, values in diff.items():
        print(f"{case}: |float32 - float64| / error: "
              + ", ".join(f"{k} {v:.2g}" for k, v in values.items()))
    write_json(out, dict(rows=rows, differences_over_error=diff), overwrite=args.overwrite,
               run=run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
