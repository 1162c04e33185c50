"""The suite's own set-up (tests/conftest.py): each pytest-xdist worker keeps to its share
of the cores its controller may use, so that XLA sizes its thread pool to that share."""

import os

import pytest


def test_each_worker_keeps_to_its_share_of_the_cores():
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker or not hasattr(os, "sched_getaffinity"):
        pytest.skip("not run by a pytest-xdist worker on a system with CPU affinity")
    n = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    cores = sorted(os.sched_getaffinity(os.getppid()))  # the controller's (the parent's)
    mine = sorted(os.sched_getaffinity(0))
    if 1 < n <= len(cores):
        assert mine == cores[int(worker[2:]) % n::n]
    else:  # more workers than cores, or one worker: no share of its own
        assert mine == cores
