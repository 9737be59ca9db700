"""Differentiation indices on cases with known answers (SPEC §6.3–6.4)."""
import networkx as nx
import numpy as np
import pytest

from mifd import analysis


def test_modularity_matches_networkx_on_random_matrices():
    rng = np.random.default_rng(0)
    for n in (4, 10, 40):
        a = analysis.symmetrised_weights(rng.normal(size=(n, n)), negative="abs")
        groups = analysis.two_groups(n)
        graph = nx.from_numpy_array(a)
        communities = [set(np.flatnonzero(groups == g)) for g in (0, 1)]
        expected = nx.community.modularity(graph, communities, weight="weight")
        assert analysis.modularity(a, groups)[0] == pytest.approx(expected, abs=1e-12)


def test_perfectly_modular_matrix_reaches_q_max():
    block = np.kron(np.eye(2), np.ones((3, 3)))
    a = analysis.symmetrised_weights(block)
    q, q_nom = analysis.modularity(a, analysis.two_groups(6))
    assert q == pytest.approx(0.5) and q_nom == pytest.approx(1.0)


def test_uniform_matrix_has_slightly_negative_q():
    a = analysis.symmetrised_weights(np.ones((6, 6)))
    # A_ij = 2 off the diagonal, k_i = 10, 2m = 60: within-group weight 24/60, expected 0.5
    assert analysis.modularity(a, analysis.two_groups(6))[0] == pytest.approx(24 / 60 - 0.5)


def test_negative_entries_refused_unless_magnitudes_are_asked_for():
    with pytest.raises(ValueError, match="negative"):
        analysis.symmetrised_weights(np.array([[0.0, -1.0], [1.0, 0.0]]))
    a = analysis.symmetrised_weights(np.array([[5.0, -1.0], [2.0, 7.0]]), negative="abs")
    assert a.tolist() == [[0.0, 3.0], [3.0, 0.0]]


def test_d_index_two_neurons_by_hand():
    groups = analysis.two_groups(2)
    assert analysis.d_index([1.0, 0.0], [0.0, 1.0], groups) == pytest.approx(1.0)
    assert analysis.d_index([1.0, 1.0], [1.0, 1.0], groups) == pytest.approx(0.0)
    # |(0.6 − 0.2) − (0.1 − 0.3)| / 1.2 = 0.5
    assert analysis.d_index([0.6, 0.1], [0.2, 0.3], groups) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="nonnegative"):
        analysis.d_index([-1.0, 0.0], [0.0, 1.0], groups)
