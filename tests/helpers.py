"""Helpers shared by the test modules (pytest puts this folder on the import path; not a
conftest.py, whose module name notebooks/conftest.py takes)."""
import os

import numpy as np

# The device of the tests whose names contain "device" (benchmarks/gpu_check.py sets cuda).
DEVICE = os.environ.get("MIFD_TEST_DEVICE", "cpu")


def assert_close_records(a, b):
    """Two records of the same run agree to float rounding: every history value to 1e-5
    relative (the MI estimates to 1e-4 nats absolute instead) and every snapshot to 2e-4
    relative. This is what a run trained in another cohort gives (ARCHITECTURE.md, Cohorts):
    batched products of another size round differently, and the critic's RMSprop turns
    gradients that are rounding noise (e.g. of T's output bias, which cancels in the DV bound)
    into learning-rate-sized steps, so the critic's estimates drift apart by ≈4e-5 nats within
    a few smoke epochs. The model's parameters agree to ≈1e-7 relative on a Zen 4 (AVX-512);
    on a Zen 1 (AVX2 only) a few GRU weights of a separation smoke run (6 of 3600) differ by
    up to 9e-5 relative, which the snapshot tolerance covers with a margin."""
    assert a.config == b.config and a.seed == b.seed
    np.testing.assert_array_equal(a.snapshot_epochs, b.snapshot_epochs)
    for key, values in b.history.items():
        atol = 1e-4 if key.startswith(("mi", "marginal")) else 0.0  # the critic's numbers
        np.testing.assert_allclose(a.history[key], values, rtol=1e-5, atol=atol, err_msg=key)
    for name, values in b.snapshots.items():
        np.testing.assert_allclose(a.snapshots[name], values, rtol=2e-4, atol=1e-7,
                                   err_msg=name)
