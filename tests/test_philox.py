"""ir/philox.py: Random123's known answers, and the same bits from NumPy arrays, numba.njit and a
numba-cuda device function (simulator); keep rates within binomial bounds; bad seeds and probabilities."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from ir import ArgumentError
from ir.philox import SEQUENCE, check_probability, keep_mask, philox4x32_10, seed_key, threshold

KAT = [  # Random123's kat_vectors for philox4x32_10: counter, key, output
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]
U = np.uint64


@pytest.mark.parametrize("ctr, key, want", KAT)
def test_known_answers(ctr, key, want):
    got = philox4x32_10(*(U(c) for c in ctr), *(U(k) for k in key))
    assert tuple(int(w) for w in got) == want


def _draws():
    rng = np.random.default_rng(0)
    cols = [rng.integers(0, 2**32, 64, dtype=np.uint64) for _ in range(6)]
    cols[0][:3] = [0, 2**32 - 1, 12345]
    return cols


def test_arrays_give_the_scalar_bits():
    cols = _draws()
    whole = philox4x32_10(*cols)
    for i in range(0, 64, 7):
        one = philox4x32_10(*(c[i] for c in cols))
        assert [int(w) for w in one] == [int(w[i]) for w in whole]


def test_njit_gives_the_numpy_bits():
    numba = pytest.importorskip("numba")
    f = numba.njit(philox4x32_10)
    cols = _draws()
    whole = philox4x32_10(*cols)
    for i in range(64):
        assert [int(w) for w in f(*(c[i] for c in cols))] == [int(w[i]) for w in whole]


CUDA_SCRIPT = """
import os, sys
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
import numpy as np
from numba import cuda
from ir.philox import philox4x32_10
dev = cuda.jit(device=True)(philox4x32_10)
@cuda.jit
def k(c, out):
    i = cuda.grid(1)
    if i < c.shape[1]:
        a, b, d, e = dev(c[0, i], c[1, i], c[2, i], c[3, i], c[4, i], c[5, i])
        out[0, i], out[1, i], out[2, i], out[3, i] = a, b, d, e
c = np.load(sys.argv[1])
out = np.zeros((4, c.shape[1]), np.uint64)
k[1, 32](c, out)
np.save(sys.argv[2], out)
"""


def test_cuda_device_function_gives_the_numpy_bits(tmp_path):
    """In a fresh process, so that the simulator is on whatever this one imported."""
    import subprocess

    pytest.importorskip("numba.cuda")
    cols = np.stack(_draws())[:, :32]
    np.save(tmp_path / "c.npy", cols)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root, "NUMBA_ENABLE_CUDASIM": "1"}
    subprocess.run(
        [sys.executable, "-c", CUDA_SCRIPT, str(tmp_path / "c.npy"), str(tmp_path / "o.npy")], env=env, check=True
    )
    got = np.load(tmp_path / "o.npy")
    want = np.stack(philox4x32_10(*cols))
    assert np.array_equal(got, want)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_keep_rate_is_within_binomial_bounds(p):
    n_rows, n_feat = 64, 128
    n = n_rows * n_feat
    for seed, step in ((0, 0), (1, 5), (2**40 + 3, SEQUENCE)):
        kept = int(keep_mask(seed, 3, step, (n_rows, n_feat), p).sum())
        sd = np.sqrt(n * p * (1 - p))
        assert abs(kept - n * (1 - p)) <= 5 * sd + 1e-9, (seed, step, kept)


def test_masks_differ_by_seed_site_step_and_repeat_exactly():
    base = keep_mask(5, 0, 0, (8, 64), 0.5)
    assert np.array_equal(base, keep_mask(5, 0, 0, (8, 64), 0.5))
    for other in (keep_mask(6, 0, 0, (8, 64), 0.5), keep_mask(5, 1, 0, (8, 64), 0.5), keep_mask(5, 0, 1, (8, 64), 0.5)):
        assert 0.3 < np.mean(other != base) < 0.7


@pytest.mark.parametrize("seed", [1.5, "3", None, True, np.float64(2.0)])
def test_a_seed_that_is_not_an_int_is_named(seed):
    with pytest.raises(ArgumentError, match=r"argument 'seed': the seed of the dropout masks must be an int, got"):
        seed_key(seed)


def test_a_seed_out_of_range_is_named():
    with pytest.raises(ArgumentError, match=r"the seed must be in 0..2\*\*64-1, got -1"):
        seed_key(-1)
    assert seed_key(2**64 - 1) == (2**32 - 1, 2**32 - 1) and seed_key(np.int64(5)) == (5, 0)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan")])
def test_a_probability_outside_0_1_is_named(p):
    with pytest.raises(ArgumentError, match=r"dropout: the probability p must be in \[0, 1\)"):
        check_probability(p, "dropout")


def test_a_probability_that_is_not_a_number_is_named():
    with pytest.raises(ArgumentError, match=r"zoneout: the probability p must be a number in \[0, 1\), got '0.5'"):
        check_probability("0.5", "zoneout")


def test_threshold_is_p_of_two_to_the_32():
    assert threshold(0.0) == 0 and threshold(0.5) == 2**31 and threshold(0.999999999999) == 2**32 - 1
