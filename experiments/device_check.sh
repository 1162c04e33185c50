#!/usr/bin/env bash
# One accelerator run of tlsjax, at most 8 minutes (BUDGET seconds): a GPU test subset, the
# Monte Carlo and ES benchmarks, on whatever accelerator JAX finds. Run from the project root:
#
#     OUT=some/folder bash experiments/device_check.sh
#
# It writes two files into $OUT: results.json (every step's exit status, wall time and JSON)
# and summary.txt (the device, one line per step and a short table of the figures). Where JAX
# finds no accelerator, or with SMALL=1, every size shrinks (a dry run on a CPU in ~3 minutes).
# Steps run in priority order; a step starts only while 20 s of the budget are left, and none
# runs past it. Needs python3 with JAX (with CUDA on a GPU), equinox, optax, optimistix,
# jaxtyping, tqdm, pytest (and matplotlib for nothing here); `bc` is not needed.
set -u
OUT=${OUT:-device-check}; mkdir -p "$OUT/w"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PY:-python3}; START=$(date +%s); BUDGET=${BUDGET:-480}
BACKEND=$($PY -c "import jax; print(jax.default_backend())" 2>/dev/null || echo none)
if [ "${SMALL:-}" = "" ]; then SMALL=$([ "$BACKEND" = cpu ] && echo 1 || echo 0); fi
if [ "$SMALL" = 1 ]; then  # dry-run sizes
  L=6; LBIG=12; R=9; LMC=6; V=2; SWEEPS="--anneal-sweeps 40 --sweeps 20"; LN=8; MAXS=10
  TESTS="tests/test_mc_kernel.py"; TSCALE=4  # a CPU compiles and runs slower
else  # LBIG = 108: N ~ 1.0e6 impurities at x = 0.2 (fcc: 4 L^3 x)
  L=18; LBIG=108; R=257; LMC=18; V=16; SWEEPS=""; LN=29; MAXS=500
  TESTS="tests/test_mc_kernel.py tests/test_mc.py tests/test_numeric_guards.py tests/test_sharding.py"
  TSCALE=1
fi
: > "$OUT/summary.txt"
step() {  # step NAME TIMEOUT CMD...: runs CMD, logs rc and wall seconds
  local n=$1 to=$(( $2 * TSCALE )); shift 2
  local left=$(( BUDGET - ($(date +%s) - START) ))
  [ $left -lt 20 ] && { echo "$n skipped (deadline)" | tee -a "$OUT/summary.txt"; return; }
  [ $to -gt $left ] && to=$left
  local s=$(date +%s%N); timeout $to "$@" > "$OUT/w/$n.log" 2>&1; local rc=$?
  local ms=$(( ($(date +%s%N) - s) / 1000000 ))
  echo "$n rc=$rc wall_ms=$ms" | tee -a "$OUT/summary.txt"
  echo "{\"rc\": $rc, \"wall_ms\": $ms}" > "$OUT/w/$n.step"
  tail -n 3 "$OUT/w/$n.log" | sed 's/^/    /' >> "$OUT/summary.txt"
}
{ command -v nvidia-smi > /dev/null && nvidia-smi -L | head -2; uptime
  $PY -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tail -1
  echo "backend=$BACKEND small=$SMALL budget=${BUDGET}s"; } | tee -a "$OUT/summary.txt"

# Steps in priority order (the deadline skips the last ones first).
# 1. correctness on this backend: the fused kernel against XLA, the Monte Carlo, the numerics
step tests 120 $PY -m pytest -q -x -p no:cacheprovider -n 4 $TESTS
# 2. Monte Carlo sweep: ms per sweep and attempts/s against NumPy (fused kernel on a GPU)
TP="$PY experiments/bench_mc.py --case throughput --cells $LMC --repeats 1 --max-sweeps $MAXS"
step mc_throughput_auto 90 $TP --kernel auto
# 3. the default pipeline, 1 realization (auto: fused kernel, realizations vmapped)
M="$PY -m tlsjax.cli mc --x 0.2 --atilde 3 --seed 2 --no-progress --overwrite $SWEEPS"
step mc_paper_1 60 $M --cells $LMC --realizations 1 --json "$OUT/w/mc_paper_1.json"
# 4. ES reduction at N ~ 1e6 impurities, 1 realization
E="$PY -m tlsjax.cli es --x 0.2 --atilde 3 --seed 1 --width 0 --no-progress --overwrite"
step es_big 90 $E --cells $LBIG --realizations 1 --json "$OUT/w/es_big.json"
# 5. the pipeline on V realizations; N ~ 2e4 (L = 29) rows on the fly; the XLA path
step mc_paper_V 90 $M --cells $LMC --realizations $V --json "$OUT/w/mc_paper_V.json"
step mc_big 60 $PY experiments/bench_mc.py --case big --cells $LN --repeats 2
step mc_throughput_xla 60 $TP --kernel xla
# 6. ES at paper size, 1 and R realizations
step es_1 40 $E --cells $L --realizations 1 --json "$OUT/w/es_1.json"
step es_R 40 $E --cells $L --realizations $R --json "$OUT/w/es_R.json"

# gather: results.json (steps, their JSON) and the table in summary.txt
$PY experiments/_device_summary.py "$OUT" >> "$OUT/summary.txt" 2>&1
rm -rf "$OUT/w"
cat "$OUT/summary.txt"
