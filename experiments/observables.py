"""Observables of the S-tau model across 0.01-30 K (thin wrapper over `tlsjax observables`).

kappa(T), Q^-1(T) at 1 kHz, l/lambda of the thermal phonon and C(E) for the default
model parameters (g = 0.02, J_o = 500 K, a~ = 3, h_rel = 0, kappa_log = 0.1), with T_U
marked by both criteria, against the plain standard tunneling model with the same
C(E -> 0).

The material numbers below are round, illustrative values of an oxide glass chosen by
the user of this script; they are NOT a cited preset (tlsjax ships none). Pass your own:

    python experiments/observables.py --rho 2200 --vl 5800 --vt 3800 --out results/obs
"""

import sys

from tlsjax.cli import main

ILLUSTRATIVE_MATERIAL = ["--rho", "2200", "--vl", "5800", "--vt", "3800"]

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--rho" not in argv:
        argv = ILLUSTRATIVE_MATERIAL + argv
    if "--out" not in argv:
        argv = ["--out", "tlsjax-observables"] + argv
    sys.exit(main(["observables", *argv]))
