"""The Sec. III B regimes at full size (thin wrapper over `tlsjax regimes`).

Larger samples and ensembles than the default command, and more points:

- dilute pure crystal: x = 0.01 ... 0.7 (12 points), ~20000 impurities per sample, so that
  the crossover criterion P_S ~ g(x) (g ~ x^{4/3}, down to 3.7e-4 at x = 0.01) is resolved
  by several S spins per realization (`resolution` in the JSON);
- mixed crystal: x = 0.005 ... 0.5 (10 points), same samples;
- electric dipoles: J_ee / (g J_o) = 0.03 ... 100 (9 points) on x = 0.2, L = 24 (~11000
  impurities);
- 32 realizations per regime, checkpointed in `<out>/checkpoints` (rerun the same command
  to resume after an interruption).

About 30 min on 2 CPU cores. Any `tlsjax regimes` option given here replaces the
corresponding default, e.g.

    python experiments/regimes_full.py --out results/regimes-full --realizations 64
"""

import sys

from tlsjax.cli import main

FULL = {
    "--out": "tlsjax-regimes-full",
    "--x-dilute": "0.01,0.015,0.02,0.03,0.05,0.07,0.1,0.15,0.2,0.35,0.5,0.7",
    "--x-mixed": "0.005,0.0075,0.01,0.02,0.035,0.05,0.1,0.2,0.35,0.5",
    "--j-ee": "0.03,0.1,0.3,1,2,3,10,30,100",
    "--n-target": "20000",
    "--realizations": "32",
    "--dipole-cells": "24",
}



def _value(argv: list[str], option: str, default: str) -> str:
    """The value given to `option` ("--opt V" or "--opt=V"), else `default`."""
    for i, a in enumerate(argv):
        if a == option and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(option + "="):
            return a.split("=", 1)[1]
    return default


if __name__ == "__main__":
    argv = sys.argv[1:]
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    defaults = [x for k, v in FULL.items() if k not in given for x in (k, v)]
    if "--checkpoint" not in given:
        defaults += ["--checkpoint", f"{_value(argv, '--out', FULL['--out'])}/checkpoints"]
    sys.exit(main(["regimes", *defaults, *argv]))
