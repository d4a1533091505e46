"""The reference's activations are accurate in relative terms across the range.

Bugs these catch: a sigmoid written as 1 / (1 + exp(-z)) without np.errstate warns of
the overflow of exp(-z) for z << 0 (where 0 is the right float32 answer below -88.7); one written as (1 + tanh(z/2)) / 2 returns 0 instead of ~1e-9 at z = -20 in
float32; a tanh computed as 2 / (1 + exp(-2z)) - 1 has a 19 % relative error at z = 1e-7
in float32. The expected values come from Python's math module in float64.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from rnn_cli.core.manual import sigmoid

POINTS = [-100.0, -80.0, -20.0, -5.0, -1e-7, 0.0, 1e-7, 0.5, 5.0, 20.0, 100.0]


def exact_sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-14)])
def test_sigmoid_is_accurate_in_relative_terms_everywhere(dtype, rtol):
    z = np.array(POINTS, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would be a RuntimeWarning
        got = sigmoid(z)
    assert got.dtype == dtype
    for zi, gi in zip(POINTS, got):
        want = exact_sigmoid(float(np.asarray(zi, dtype)))
        if want < np.finfo(dtype).tiny:  # below the dtype's normal range: zero is the right answer
            assert gi == 0 or abs(gi - want) <= np.finfo(dtype).smallest_subnormal
            continue
        assert abs(float(gi) - want) <= rtol * want, (zi, float(gi), want)


def test_sigmoid_of_minus_twenty_is_not_zero_in_float32():
    # (1 + tanh(-10)) / 2 is 0.0 in float32; the true value is 2.06e-9
    assert sigmoid(np.float32(-20.0)) == pytest.approx(2.0611536e-9, rel=1e-6)
