"""Shared test settings.

Hypothesis profiles: 'ci' (derandomized, so every CI run tries the same examples) is
chosen when CI is set; 'dev' (more examples, random) otherwise. Override with
HYPOTHESIS_PROFILE=ci|dev|thorough.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

# max_examples is the unit the property files scale from (test_properties.py runs 5x it:
# 500 agreement examples per CI run); keep 'ci' at 100 unless those counts should change.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "thorough", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module's duration (restored after); for suites of tiny runs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
