"""The suite's own set-up (tests/conftest.py): each pytest-xdist worker keeps to its share
of the session's cores, so that XLA sizes its thread pool to that share."""

import os

import pytest
from conftest import WORKER_CORES, cores_shared, session_cores, share_of_cores


def test_each_worker_keeps_to_its_share_of_the_cores():
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker or not hasattr(os, "sched_getaffinity"):
        pytest.skip("not run by a pytest-xdist worker on a system with CPU affinity")
    if cores_shared():
        pytest.skip("TLSJAX_TEST_SHARED_CORES is set: the workers share every core")
    n = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    cores = session_cores()
    mine = sorted(os.sched_getaffinity(0))
    assert mine == share_of_cores(worker, n, cores)
    assert os.environ[WORKER_CORES] == ",".join(map(str, mine))
    if 1 < n <= len(cores):
        assert len(mine) == len(cores) // n or len(mine) == len(cores) // n + 1


def test_share_of_cores():
    assert share_of_cores("gw0", 2, [0, 1]) == [0]
    assert share_of_cores("gw1", 2, [0, 1]) == [1]
    assert share_of_cores("gw3", 4, list(range(16))) == [3, 7, 11, 15]
    assert share_of_cores("gw1", 3, [0, 1]) == [0, 1]  # more workers than cores
    assert share_of_cores("gw0", 1, [0, 1]) == [0, 1]
