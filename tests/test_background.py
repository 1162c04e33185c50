"""Work the command line's fits overlap in background threads: the same numbers as in the
caller's thread (precision included), errors raised where the result is asked for, and
programs made ahead of a call (`stored_jit.prefetch`) that the call waits for. Also the
helpers that keep a short command from compiling (`device_array`, the disabled progress
bar) and the rule that picks XLA's quick compile options for the fits' tables."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tlsjax as tj
from tlsjax._background import Slot, in_background, overlapping
from tlsjax._progress import progress_bar
from tlsjax._validate import device_array
from tlsjax.fit import _disk_cache as dc
from tlsjax.fit import _kappa_model as km

VALUES = [0.5, 3, True, np.float64(0.25), np.float32(1.5), np.int64(4), np.arange(3.0),
          np.arange(3, dtype=np.float32), np.arange(4), [1.0, 2.0], [1, 2], np.array(2.0)]


@pytest.mark.parametrize("x64", [False, True])
def test_device_array_is_jnp_asarray_without_compiling(x64):
    with jax.enable_x64(x64):
        for value in VALUES:
            for dtype in (None, jnp.float32, jnp.result_type(float)):
                a, b = jnp.asarray(value, dtype=dtype), device_array(value, dtype)
                assert jax.typeof(a) == jax.typeof(b), (value, dtype)
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_background_work_keeps_the_callers_precision_and_its_errors():
    with jax.enable_x64(True):
        slot = in_background(lambda: jnp.result_type(float))
    assert slot.get() == jnp.float64
    with jax.enable_x64(False):
        assert in_background(lambda: jnp.result_type(float)).get() == jnp.float32

    def fails():
        raise ValueError("from the worker")

    bad = in_background(fails)
    for _ in range(2):  # the same error every time it is asked for
        with pytest.raises(ValueError, match="from the worker"):
            bad.get()


def test_slot_waits_for_the_thread_that_fills_it():
    slot, go = Slot(), threading.Event()

    def fill():
        go.wait()
        return 42

    threading.Thread(target=lambda: slot.fill(fill), daemon=True).start()
    go.set()
    assert slot.get() == 42


def _triple(x):
    return 3.0 * x


def _refuse(x):
    raise ValueError("not this one")


def test_prefetched_programs_are_what_a_call_makes(tmp_path):
    f, bad, x = dc.stored_jit(_triple), dc.stored_jit(_refuse), jnp.asarray([1.0, 2.5])
    previous = dc.set_folder(tmp_path / "fit")
    try:
        f.prefetch(x)
        bad.prefetch(x)  # fails in the background: the call raises the same error
        np.testing.assert_array_equal(np.asarray(f(x)), [3.0, 7.5])
        assert len(list((tmp_path / "fit").glob("program-*.bin"))) == 1
        with pytest.raises(ValueError, match="not this one"):
            bad(x)
        dc.forget()
        np.testing.assert_array_equal(np.asarray(f(x)), [3.0, 7.5])  # read back
    finally:
        dc.set_folder(previous)
        dc.forget()


def test_table_built_in_the_background_is_the_same_table():
    """`stau_table_later` (a worker thread where work overlaps, as in the command line;
    the caller's float64) against `stau_table` in this thread: the same bits."""
    sample, key = tj.Sample(0.2, 3), jax.random.PRNGKey(11)
    with jax.enable_x64(True):
        with overlapping():
            background = km.stau_table_later(sample, 1, key, 3.0, 0.0)()
        assert background.log_p_s.dtype == jnp.float64
        with km._TABLES_LOCK:
            km._TABLES.pop(km._table_key(sample, 1, key, 3.0, 0.0))
        here = km.stau_table(sample, 1, key, 3.0, 0.0)
    assert here is not background
    for name in ("log_eps", "log_p_s", "d_log_p_s", "log_phi_tau", "d_log_phi_tau"):
        np.testing.assert_array_equal(np.asarray(getattr(here, name)),
                                      np.asarray(getattr(background, name)), err_msg=name)


def test_quick_compile_only_for_tables_up_to_the_default_sample():
    assert km._quick(tj.Sample(0.2, 10), 4)
    assert km._quick(tj.Sample(0.2, 6), 2)
    assert not km._quick(tj.Sample(0.2, 14), 4)
    assert not km._quick(tj.Sample(0.2, 10), 5)


def test_a_disabled_progress_bar_is_no_tqdm_object():
    bar = progress_bar(10, desc="x", enabled=False)
    assert type(bar).__module__ == "tlsjax._progress"
    bar.update(3)
    bar.set_postfix(loss=1.0, refresh=False)
    bar.close()
    assert bar.n == 3


_TRACES = []


def _interrupted_once(x):
    _TRACES.append(1)
    if len(_TRACES) == 1:
        raise KeyboardInterrupt  # Ctrl-C while the program was being made
    return x + 1.0


def test_a_program_whose_making_failed_is_made_again(tmp_path):
    f, x = dc.stored_jit(_interrupted_once), jnp.asarray(2.0)
    previous = dc.set_folder(tmp_path / "fit")
    try:
        with pytest.raises(KeyboardInterrupt):
            f(x)
        assert float(f(x)) == 3.0
    finally:
        dc.set_folder(previous)
        dc.forget()


def test_stopped_workers_end_at_their_next_safe_point():
    from tlsjax._background import stopping
    from tlsjax._interrupts import raise_if_interrupted

    stop, steps = threading.Event(), []

    def loop():
        while True:
            raise_if_interrupted()
            steps.append(1)
            threading.Event().wait(0.001)

    worker = in_background(loop, stop=stop)
    with pytest.raises(ValueError, match="caller failed"), stopping(stop):
        raise ValueError("caller failed")
    worker.settle()
    assert stop.is_set() and worker.failed()
    with pytest.raises(KeyboardInterrupt):
        worker.get()
    raise_if_interrupted()  # this thread was not asked to stop
