"""XLA options for programs that compile long and run briefly (on a CPU).

A short command (a fit of a 13-point curve) spends most of its time compiling programs it
then runs for milliseconds. For those, `QUICK_COMPILE` turns off LLVM's optimization and
uses XLA's older CPU loop emitters. Measured on this project's programs (2 CPU cores):

- the fit's `evaluate`, where the command line stores its programs
  (`stored_jit(compiler_options=...)`): compiles in 0.7 s instead of 1.3 s (a library call
  compiles it with XLA's defaults: the same results to the last bits);
- the ES reduction of the fits' default DOS sample (x = 0.2, L = 10, 4 realizations) and its
  tabulation, which a fit with the S-tau model runs five times (its table, four DOS-sample
  refits), take `TABLE_COMPILE` (LLVM at level 1, older emitters). Float64 first call
  (compile and run) and later runs, ES reduction / tabulation (`stau_table`):
  defaults 1.8-2.0 s / 1.2 s, then 0.08 s / 0.10 s; `QUICK_COMPILE` 1.0 s / 0.72 s, then
  0.25 s / 0.34 s; `TABLE_COMPILE` 1.23 s / 0.81 s, then 0.07 s / 0.16 s. Over five tables
  `TABLE_COMPILE` is the fastest (3.0 s; defaults 3.8 s, `QUICK_COMPILE` 4.1 s). At L = 14
  it is too (2.7 s first, then 0.83 s, against 3.7 s and 0.69 s), but samples larger than
  the default keep the defaults (`fit._kappa_model.QUICK_TABLE_SIZE`: only the default size
  was measured over whole fits);
- the fit's L-BFGS step is left at the defaults: these options halve its compile time, but
  a warm fit then runs ~0.9 s longer.

They change the last bits of what these programs compute (another order of floating-point
operations). A fit along a direction the data do not determine can amplify that. When the
tables first took `QUICK_COMPILE`, on the Stycast 1266 curve (`tlsjax fit kappa FILE
--model stau`) the main fit moved by ~1e-12, but the refits over independent DOS samples
ended elsewhere along the flat g-J_o direction, and the DOS-sample part of the T_U error
went from 25.9 to 25.6 K (that part is itself uncertain by +-41 % with 4 samples); moving
them to `TABLE_COMPILE` took it to 25.3 K, and on PTFE (Reese 1965), where T_U is not
determined (profile bounds 0.001-52 K), the main fit's T_U from 2.464 to 2.460 mK (chi^2
larger by 7e-4, within the fits' stopping tolerance). The other shared curves moved by less
than 1e-8 (relative).
Only top-level programs on a CPU take them
(`quick_compile_wanted`): XLA accepts options only for the outermost program, and on other
backends they are not what is measured here. `quick_compile()` asks for `TABLE_COMPILE` in
the current thread (`tlsjax.observables.stau_dos` and `tabulate_stau` follow it); stored
programs take their options from `stored_jit(compiler_options=...)`.
"""

from __future__ import annotations

import jax

from ._validate import ThreadFlag

QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
#: For the ES reduction and tabulation of a small DOS sample, which a fit with the S-tau
#: model runs five times (its table and four DOS-sample refits): LLVM at level 1 instead
#: of 0 (module docstring).
TABLE_COMPILE = {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False}

_QUICK = ThreadFlag()


def quick_compile(enabled: bool = True):
    """In this thread, compile the programs that follow it (the ES reduction and the
    tabulation of a table, `stau_dos` and `tabulate_stau`) with their quick options, on a
    CPU: `TABLE_COMPILE`."""
    return _QUICK.set(enabled)


def quick_compile_wanted() -> bool:
    """Whether `quick_compile()` is on in this thread and the default backend is a CPU."""
    return _QUICK.get() and jax.default_backend() == "cpu"
