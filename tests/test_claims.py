"""The claim rules on hand-made runs: exact tests, decidability, Holm, verdict wording."""
import re
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu, wilcoxon

from mifd import analysis, claims


def test_exact_tests_match_scipy_without_ties():
    rng = np.random.default_rng(0)
    for n_a, n_b in ((3, 4), (5, 5), (10, 10)):
        a, b = rng.normal(0.5, 1, n_a), rng.normal(size=n_b)
        for alternative in ("greater", "less"):
            expected = mannwhitneyu(a, b, alternative=alternative, method="exact").pvalue
            assert claims.rank_sum_p(a, b, alternative) == pytest.approx(expected, rel=1e-9)
    for n in (4, 7, 12):
        d = rng.normal(0.3, 1, n)
        expected = wilcoxon(d, alternative="greater", method="exact").pvalue
        assert claims.signed_rank_p(d) == pytest.approx(expected, rel=1e-9)


def test_attainable_minimum_p():
    assert claims.min_p_rank_sum(3, 3) == 1 / comb(6, 3) == 0.05
    assert claims.runs_to_decide() == 4 and claims.runs_to_decide(0.01) == 5
    assert claims.rank_sum_p([4, 5, 6], [1, 2, 3]) == pytest.approx(0.05)  # the best 3 vs 3 can do
    assert claims.min_p_signed_rank(4) == 1 / 16
    assert claims.signed_rank_p([1, 2, 3, 4]) == pytest.approx(1 / 16)
    assert claims.signed_rank_p([0, 0, 1, 2, 3, 4]) == pytest.approx(1 / 16)  # zeros dropped


def test_ties_use_midranks_exactly():
    # all ties: every split has the same rank sum, so p = 1 in both directions
    assert claims.rank_sum_p([1, 1, 1], [1, 1, 1]) == 1.0
    # 3 of 5 values tied between the samples: enumerate by hand
    a, b = np.array([2.0, 2.0, 3.0]), np.array([1.0, 2.0])
    pooled = np.array([2.0, 2.0, 3.0, 1.0, 2.0])
    from itertools import combinations

    from scipy.stats import rankdata
    ranks = rankdata(pooled)
    sums = [ranks[list(c)].sum() for c in combinations(range(5), 3)]
    expected = np.mean(np.array(sums) >= ranks[:3].sum() - 1e-9)
    assert claims.rank_sum_p(a, b) == pytest.approx(expected)


def test_versus_control_verdicts():
    high, low = np.arange(10, 15.0), np.arange(5.0)
    assert claims.versus_control("c", "Q", high, low).verdict == "yes"
    assert claims.versus_control("c", "Q", low, high).verdict == "no"
    assert claims.versus_control("c", "Î", low, high, "less").verdict == "yes"
    # 3 vs 3 cannot go below 0.05: not decidable even at perfect separation, not "no"
    assert claims.versus_control("c", "Q", high[:3], low[:3]).verdict == "not decidable"
    assert claims.versus_control("c", "Q", high[:4], low[:3]).verdict == "yes"  # 1/35
    v = claims.versus_control("c", "Q", high, low)
    assert "p = 0.004" in v.numbers and "5 vs 5 runs" in v.numbers
    assert v.numbers.startswith("Q 12.000 ± 1.581 vs control 2.000 ± 1.581")
    epochs = claims.versus_control("c", "epoch", high * 100, low * 100, "less", digits=0)
    assert epochs.numbers.startswith("epoch 1200 ± 158 vs control 200 ± 158")


def test_magnitude_and_positive():
    assert claims.magnitude("c", "Q_str", [0.12, 0.09, 0.11], 0.1).verdict == "yes"
    assert claims.magnitude("c", "Q_str", [0.08, 0.09, 0.11], 0.1).verdict == "no"
    assert claims.magnitude("c", "Q_str", [np.nan], 0.1).verdict == "not decidable"
    assert claims.positive("c", "r", [0.2, 0.3, 0.1, 0.4, 0.5]).verdict == "yes"   # 1/32
    assert claims.positive("c", "r", [0.2, 0.3, 0.1, 0.4]).verdict == "not decidable"
    assert claims.positive("c", "r", [0.2, -0.3, 0.1, -0.4, 0.5, -0.6]).verdict == "no"


def test_holm():
    adjusted = claims.holm([0.01, 0.04, np.nan, 0.03])
    assert adjusted[0] == pytest.approx(0.03)
    assert adjusted[3] == pytest.approx(0.06) and adjusted[1] == pytest.approx(0.06)
    assert np.isnan(adjusted[2])


def test_precedence_rows_use_holm_and_count_ties():
    later = np.array([25.0, 50, 25, 75, 25, 50, 0, np.nan])
    rows = claims.precedence("functional first", {"a": later, "b": later, "c": -later})
    assert [r.verdict for r in rows] == ["yes", "yes", "no"]
    assert "later in 6, earlier in 0, tied in 1, undefined in 1 of 8" in rows[0].numbers
    assert rows[0].p == pytest.approx(3 / 64)  # 1/64 raw, Holm over three measures
    # five untied runs: 3 × 1/32 ≥ 0.05, so three measures cannot decide
    few = claims.precedence("f", {"a": later[:5], "b": later[:5], "c": later[:5]})
    assert {r.verdict for r in few} == {"not decidable"}
    assert claims.precedence("f", {"a": later[:5]})[0].verdict == "yes"


def test_table_and_bad_alternative():
    t = claims.table([claims.magnitude("c", "x", [1.0], 0.5)])
    assert t.columns.tolist() == ["claim", "rule", "verdict", "numbers"]
    with pytest.raises(ValueError, match="alternative"):
        claims.rank_sum_p([1], [2], "two-sided")


def _runs(n, shift, seed):
    rng = np.random.default_rng(seed)
    cols = ("accuracy", "r2_mean", "r2_mean_scored", "mi", "Q_corr", "Q_str", "D_corr", "D_out", "D_in",
            "r(d, d_out)", "r(d, d_in)", "NMI (correlations)")
    scores = ("accuracy", "r2_mean", "r2_mean_scored")
    return pd.DataFrame({c: rng.uniform(0, 0.2, n) + (0.85 if c in scores else 0)
                         + (shift if c not in (*scores, "mi") else -shift * (c == "mi"))
                         for c in cols})


def test_task_claims_decide_every_rule_and_can_fail():
    lags = pd.DataFrame({m: np.full(6, 50.0) for m in ("a", "b", "c")})
    strong, control = _runs(6, 0.6, 0), _runs(6, 0.0, 1)
    for rows in (claims.wm_claims(strong, control, lags),
                 claims.separation_claims(strong, control, lags)):
        assert {r.verdict for r in rows} == {"yes"}, claims.table(rows)
    wm = claims.wm_claims(control, control.assign(mi=control["mi"] - 1), -lags)
    verdicts = claims.table(wm).set_index("rule")["verdict"]
    tested = [r for r in verdicts.index if "than the control" in r or "structural later" in r]
    assert len(tested) == 11 and (verdicts[tested] == "no").all()
    assert {r.claim for r in wm} >= {"high performance", "input/output weights aligned with function"}
    separation = claims.separation_claims(strong, control, lags)
    assert "output weights aligned with function" in {r.claim for r in separation}
    few = claims.wm_claims(strong.head(3), control.head(3), lags.head(3))
    assert {r.verdict for r in few if "rank-sum" in r.rule or "signed-rank" in r.rule} == {"not decidable"}


def test_summary_words_each_claim_from_its_rules():
    verdicts = pd.DataFrame({
        "claim": ["a", "a", "b", "b", "c", "d", "d", "e"],
        "rule": list("12345678"), "numbers": [""] * 8,
        "verdict": ["yes", "yes", "yes", "no", "not decidable", "no", "not decidable", "no"]})
    table = claims.summary(verdicts).set_index("claim")
    assert table["verdict"].to_dict() == {"a": "yes", "b": "partly", "c": "not decidable",
                                          "d": "no", "e": "no"}
    assert table.loc["b", "rules"] == "1 yes, 1 no of 2 rules"
    assert table.loc["d", "rules"] == "1 no, 1 not decidable of 2 rules"


def test_findings_say_which_rules_of_a_claim_fail():
    verdicts = pd.DataFrame({
        "claim": ["a", "a", "a", "b", "b", "b"],
        "rule": ["x higher than the control (exact one-sided rank-sum p < 0.05)", "mean x > 0.5",
                 "mean x (all steps) > 0.9", "y > 0 across runs (exact)",
                 "y higher than the control (exact)", "mean y > 1"],
        "verdict": ["yes", "no", "yes", "not decidable", "not decidable", "no"], "numbers": ""})
    lines = claims.findings(verdicts).split("\n")
    assert lines == [  # only a closing parenthesis (the test) leaves the rule's name
        "- **a**: partly. Yes: x higher than the control; mean x (all steps) > 0.9. No: mean x > 0.5.",
        "- **b**: no. No: mean y > 1. Not decidable: y > 0 across runs; y higher than the control."]


def test_overview_maps_each_task_onto_the_papers_claims():
    rules = lambda claim, *words: pd.DataFrame(
        {"claim": claim, "rule": [str(k) for k in range(len(words))], "verdict": list(words), "numbers": ""})
    wm = pd.concat([rules("high performance", "yes"), rules("input/output weights aligned with function", "yes", "no")])
    sep = pd.concat([rules("high performance", "no"), rules("output weights aligned with function", "yes"),
                     rules("the detected communities are the two halves", "yes")])
    table = claims.overview({"wm": wm, "sep": sep})
    assert list(table.index) == list(dict.fromkeys(claims.PAPER_CLAIMS.values()))
    weights = "4. input/output weights aligned with function"
    assert table.loc[weights, "wm"] == "partly (1 yes, 1 no of 2 rules)"
    assert table.loc[weights, "sep"] == "yes (1 yes of 1 rule)"
    assert table.loc["1. high task performance", "sep"] == "no (1 no of 1 rule)"
    assert table.loc["2. clear functional modularity", "wm"] == "not tested"
    assert table.loc["2. clear functional modularity", "sep"].startswith("yes")


def test_spearman_permutation_p_matches_scipy_and_can_fail():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    x = np.repeat([0.0, 0.03, 0.1, 0.3, 1.0], 5)
    y = 0.2 * np.log1p(10 * x) + rng.normal(0, 0.05, x.size)
    rho, p = claims.spearman_p(x, y, "greater")
    assert rho == pytest.approx(spearmanr(x, y).statistic)
    assert p == pytest.approx(1 / 20_001)  # the smallest attainable: no permutation as extreme
    noise = rng.normal(size=x.size)
    _, p_null = claims.spearman_p(x, noise)
    assert p_null == pytest.approx(spearmanr(x, noise).pvalue, abs=0.03)
    assert claims.trend("c", "Q_str", x, y, "greater").verdict == "yes"
    assert claims.trend("c", "Q_str", x, -y, "greater").verdict == "no"
    assert claims.trend("c", "Q_str", x[:2], y[:2]).verdict == "not decidable"


def test_dose_claims_find_a_monotonic_index_and_not_a_flat_one():
    lam = np.repeat([0.0, 0.03, 0.1, 0.3, 1.0], 5)
    finals = pd.DataFrame({"lambda": lam, "Q_str": lam + np.tile(np.arange(5) * 1e-3, 5),
                           "accuracy": np.tile([0.91, 0.95, 0.93, 0.92, 0.94], 5)})
    rows = {v.claim: v for v in claims.dose_claims(finals, ("Q_str", "accuracy"))}
    assert rows["Q_str depends on λ"].verdict == "yes" and "with λ" in rows["Q_str depends on λ"].rule
    assert rows["accuracy depends on λ"].verdict == "no"
    assert rows["MI pressure costs the task (accuracy < 0.9)"].verdict == "no"
    falling = finals.assign(accuracy=0.95 - 0.2 * finals["lambda"])
    cost = claims.dose_claims(falling, ("accuracy",))[-1]
    assert cost.verdict == "yes" and cost.numbers.startswith("below at λ = 0.3 and 1; ")
    assert claims.dose_claims(finals.assign(accuracy=0.5), ("accuracy",))[-1].verdict == "not decidable"


def test_spearman_reach_decides_decidability():
    assert claims.min_p_spearman([1, 2, 3, 4]) == pytest.approx(2 / 24)        # no ties: 2/n!
    assert claims.min_p_spearman([0, 0, 1, 1], "greater") == pytest.approx(4 / 24)
    four = claims.trend("c", "y", [1, 2, 3, 4], [1, 2, 3, 4])
    assert four.verdict == "not decidable"                                    # best p 0.083
    five = claims.trend("c", "y", [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])
    assert five.verdict == "yes"                                              # 2/120 reachable


def _l1_table(q_mi_l1, q_mi, q_l1, q0, zero_l1, zero0):
    rows = []
    for (lam, c), (q, z) in {(0.1, 0.001): (q_mi_l1, zero0), (0.1, 0.0): (q_mi, zero0),
                             (0.0, 0.001): (q_l1, zero_l1), (0.0, 0.0): (q0, zero0)}.items():
        rows += [{"lambda": lam, "c_l1": c, "seed": s, "Q_str": q[s] + 1e-3 * s,
                  "epoch Q_str > 0.1": 1001.0 - 100 * q[s] - s, "near-zero": z[s] + 1e-3 * s,
                  "near-zero between − within": z[s] - 0.1 + 1e-3 * s} for s in range(len(q_mi))]
    return pd.DataFrame(rows)


def test_sparsity_claims_compare_each_strength_with_the_same_lambda_without_l1():
    n = 4                                  # 4 vs 4: the exact test reaches 1/70
    table = _l1_table([0.2] * n, [0.05] * n, [0.0] * n, [0.0] * n, [0.5] * n, [0.1] * n)
    rows = claims.sparsity_claims(table, 0.1)
    assert [v.verdict for v in rows] == ["yes", "yes", "yes", "no", "no", "yes", "yes"]
    assert "than λ = 0.1 without L1" in rows[0].rule and "vs λ = 0.1 without L1" in rows[0].numbers
    assert re.match(r"epoch Q_str > 0\.1 \d+ ± \d+ vs λ = 0\.1 without L1 \d+ ± \d+ \(", rows[2].numbers)
    three = table[table["seed"] < 3]       # 3 vs 3 cannot go below p = 0.05
    assert {v.verdict for v in claims.sparsity_claims(three, 0.1) if not np.isnan(v.p)} == {"not decidable"}
    # every run without L1 is a control, whatever its seed: 3 runs with L1 against 10 decide
    ten = _l1_table([0.2] * 10, [0.05] * 10, [0.0] * 10, [0.0] * 10, [0.5] * 10, [0.1] * 10)
    few = ten[(ten["c_l1"] == 0.0) | (ten["seed"] < 3)]
    rows = claims.sparsity_claims(few, 0.1)
    assert "(3 vs 10 runs" in rows[0].numbers
    assert [v.verdict for v in rows] == ["yes", "yes", "yes", "no", "no", "yes", "yes"]


def test_dose_trends_are_holm_adjusted_over_the_indices():
    lam = np.repeat([0.0, 0.03, 0.1, 0.3, 1.0], 5)
    rng = np.random.default_rng(1)
    finals = pd.DataFrame({"lambda": lam, "weak": lam + rng.normal(0, 0.35, lam.size), "accuracy": 0.95})
    alone = claims.dose_claims(finals, ("weak",))[0]
    flat = {f"flat{i}": rng.normal(size=lam.size) for i in range(8)}
    nine = claims.dose_claims(finals.assign(**flat), ("weak", *flat))[0]
    assert alone.verdict == "yes" and "Holm" not in alone.rule       # p ≈ 0.036 for one test
    assert nine.verdict == "no" and "Holm over 9" in nine.rule        # the same ρ, one of nine
    assert nine.numbers.startswith(alone.numbers) and nine.p > 0.05
    five = pd.DataFrame({"lambda": [1, 2, 3, 4, 5], "a": [1, 2, 3, 4, 5.0], "accuracy": 0.95})
    two = claims.dose_claims(five.assign(b=-five["a"]), ("a", "b"))
    assert [v.verdict for v in two[:2]] == ["yes", "yes"]                      # 2 × 2/120 < 0.05
    six = claims.dose_claims(five.assign(**{c: five["a"] for c in "bcdef"}), tuple("abcdef"))
    assert all(v.verdict == "not decidable" for v in six[:6])                 # 6 × 2/120 = 0.1


def test_mean_sd_counted_names_how_many_runs_a_mean_is_over():
    assert claims.mean_sd_counted([1.0, 3.0]) == claims.mean_sd([1.0, 3.0]) == "2.000 ± 1.414"
    assert claims.mean_sd_counted([1.0, 3.0, float("nan")]) == "2.000 ± 1.414 (2 of 3 runs)"
    assert claims.mean_sd_counted([925.0, float("nan")]) == "925.000 (1 of 2 runs)"
    assert claims.mean_sd_counted([float("nan")] * 4) == "–"


def test_settings_below_lists_every_setting_whose_mean_accuracy_is_below():
    table = pd.DataFrame({"lambda": [0.0, 0.0, 0.3, 0.3, 1.0], "accuracy": [0.95, 0.93, 0.91, 0.87, 0.6]})
    assert claims.settings_below(table, "lambda") == [0.3, 1.0]   # means 0.89 and 0.6
    assert claims.settings_below(table[table["lambda"] < 0.3], "lambda") == []
    recovers = pd.DataFrame({"lambda": [0.0, 0.1, 0.3], "accuracy": [0.95, 0.8, 0.93]})
    assert claims.settings_below(recovers, "lambda") == [0.1]   # not every λ above the first


def test_conditions_table_prints_one_column_per_condition_and_whole_epochs():
    finals = pd.DataFrame({"lambda": [0.0, 0.0, 0.1, 0.1], "accuracy": [0.9, 1.0, 0.8, 0.8],
                           "t50 Q_str": [925.0, np.nan, 300.0, 351.0],
                           "differentiated": [False, False, True, False]})
    table = claims.conditions_table(finals, "lambda", ["accuracy", "t50 Q_str"], {"accuracy": "acc"})
    assert list(table.columns) == ["0", "0.1"]
    assert list(table.index) == ["acc", "t50 Q_str", "runs", "differentiated"]
    assert table.loc["acc", "0"] == "0.950 ± 0.071"
    assert table.loc["t50 Q_str", "0"] == "925 (1 of 2 runs)" and table.loc["t50 Q_str", "0.1"] == "326 ± 36"
    assert table.loc["differentiated", "0.1"] == "50%" and table.loc["runs", "0"] == 2
    two = claims.conditions_table(finals.assign(c_l1=[0.0, 1e-4, 0.0, 1e-3]), ["lambda", "c_l1"], ["accuracy"])
    assert list(two.columns) == [("0", "0"), ("0", "0.0001"), ("0.1", "0"), ("0.1", "0.001")]
    assert two.columns.names == ["lambda", "c_l1"] and table.columns.name == "lambda"
    assert claims.conditions_table(finals, "lambda", ["accuracy"], {"lambda": "λ"}).columns.name == "λ"


def test_critic_pilot_keeps_the_variant_only_when_every_run_stays_below_the_share():
    assert claims.critic_pilot([0.0, 0.02, 0.05]).verdict == "yes"
    assert claims.critic_pilot([0.0, 0.02, 0.3]).verdict == "no"
    assert claims.critic_pilot([]).verdict == "not decidable"


def _guarded(threshold=None, monkeypatch=None):
    rng = np.random.default_rng(3)
    mi = pd.DataFrame({"accuracy": rng.uniform(0.9, 1, 8), "mi": rng.uniform(0, 1, 8),
                       "Q_corr": rng.uniform(0.2, 0.4, 8), "Q_str": rng.uniform(0.05, 0.2, 8),
                       "D_corr": rng.uniform(0.45, 0.6, 8), "D_in": rng.uniform(0, 1, 8),
                       "D_out": rng.uniform(0, 1, 8)})
    control = mi.assign(mi=mi["mi"] + 1, Q_corr=0.0, Q_str=0.0, D_corr=0.1)
    lags = pd.DataFrame({"t50 of the final value": rng.uniform(0, 100, 8)})
    if threshold is not None:
        monkeypatch.setattr(claims, "FUNCTIONAL_D", threshold)
    return claims.guard_table({"wm": claims.table(claims.wm_claims(mi, control, lags))})


def test_the_guard_passes_an_unchanged_rule_and_names_a_changed_one(monkeypatch):
    expected = _guarded()
    assert claims.guard_differences(expected, _guarded()) == []
    moved = claims.guard_differences(expected, _guarded(0.55, monkeypatch))
    assert moved and all("D_corr" in line for line in moved)
    assert any(line.startswith(("gone:", "new:")) for line in moved)  # the rule's text names 0.55
    flipped = expected.copy()
    flipped.loc[0, "verdict"] = "no" if flipped.loc[0, "verdict"] == "yes" else "yes"
    assert claims.guard_differences(expected, flipped)[0].startswith("verdict moved: wm | high")


def test_exact_spearman_enumerates_every_pairing():
    from scipy.stats import spearmanr

    x, y = [1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5]
    rho, p = claims.spearman_exact_p(x, y, "greater")
    assert rho == pytest.approx(spearmanr(x, y).statistic)
    # by hand: pairings of 6 with ρ at least this large, counted over all 720
    ranks = np.array(list(__import__("itertools").permutations(range(6))))
    d2 = ((ranks - np.arange(6)) ** 2).sum(1)
    assert p == pytest.approx(np.mean(d2 <= ((np.array(y) - np.array(x)) ** 2).sum()))
    assert claims.spearman_exact_p(range(5), range(5))[1] == pytest.approx(2 / 120)
    with pytest.raises(ValueError, match="pairings"):
        claims.spearman_exact_p(range(11), range(11))


def test_relation_reads_a_monotone_pairing_and_refuses_too_few_runs():
    assert claims.relation("c", "x", "y", range(8), range(8)).verdict == "yes"
    assert claims.relation("c", "x", "y", range(8), [3, 1, 4, 1, 5, 9, 2, 6]).verdict == "no"
    assert claims.relation("c", "x", "y", range(3), range(3)).verdict == "not decidable"


# --- effect sizes and rates ----------------------------------------------------------------

@pytest.mark.parametrize("m,n", [(1, 1), (2, 3), (3, 3), (4, 2), (5, 5)])
def test_the_mann_whitney_null_counts_every_split_once(m, n):
    from collections import Counter
    from itertools import combinations
    from math import comb

    counts = claims._mann_whitney_counts(m, n)
    assert counts.sum() == comb(m + n, m)
    brute = Counter()
    for first in combinations(range(m + n), m):  # values 0…m+n−1, the first sample's
        brute[sum(1 for x in first for y in set(range(m + n)) - set(first) if x > y)] += 1
    np.testing.assert_array_equal(counts, [brute[u] for u in range(m * n + 1)])


def test_the_hodges_lehmann_interval_cuts_the_tabled_number_of_differences():
    # 10 vs 10 at 95 %: the two-sided critical U is 23, so the interval runs from the 24th
    # smallest to the 24th largest of the 100 differences, with confidence 1 − 2·P(U ≤ 23)
    a, b = np.arange(10) + 3.0, np.arange(10.0)
    shift, low, high, achieved = claims.hodges_lehmann(a, b)
    differences = np.sort(np.subtract.outer(a, b).ravel())
    assert shift == 3.0
    assert (low, high) == (differences[23], differences[-24])
    assert achieved == pytest.approx(0.9567, abs=1e-4)


def test_too_few_runs_give_no_interval_and_say_so():
    shift, low, high, achieved = claims.hodges_lehmann([1, 2, 3], [0, 0.5, 1])
    assert shift == 1.5 and np.isinf(low) and np.isinf(high)
    assert "no interval with these runs" in claims.shift_text([1, 2, 3], [0, 0.5, 1])
    assert claims.shift_text([], [1]) == "shift –"


def test_the_interval_covers_the_true_shift_at_least_as_often_as_it_claims():
    rng = np.random.default_rng(0)
    covered, trials = 0, 400
    for _ in range(trials):
        a, b = rng.standard_normal(6) + 0.7, rng.standard_normal(5)
        _, low, high, achieved = claims.hodges_lehmann(a, b)
        covered += low <= 0.7 <= high
    assert covered / trials >= achieved - 0.03


def test_clopper_pearson_matches_its_tabled_values():
    assert claims.clopper_pearson(7, 10) == pytest.approx((0.3475, 0.9333), abs=1e-4)
    assert claims.clopper_pearson(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert claims.clopper_pearson(10, 10)[1] == 1.0
    assert claims.rate_text(7, 10) == "7 of 10 (0.35–0.93)"


def test_fisher_exact_reaches_its_smallest_p_only_at_all_against_none():
    from math import comb

    assert claims.rates_p(10, 10, 0, 10) == pytest.approx(1 / comb(20, 10))
    assert claims.min_p_rates(10, 10) == pytest.approx(1 / comb(20, 10))
    assert claims.rates_p(7, 10, 7, 10) > 0.5
    assert claims.rates_p(0, 10, 10, 10, "less") == pytest.approx(1 / comb(20, 10))


def test_a_comparison_with_the_control_prints_its_shift_and_interval():
    v = claims.versus_control("c", "Q", np.arange(10) + 3.0, np.arange(10.0))
    assert "shift +3.000 [0.000, 6.000] (95.7%)" in v.numbers


def test_run_counts_are_compared_exactly_and_a_control_against_itself_says_no():
    mi, control = [True] * 8 + [False] * 2, [True] * 2 + [False] * 8
    v = claims.more_runs("c", "succeed", mi, control)
    assert v.verdict == "yes" and v.p < 0.05
    assert v.numbers.startswith("8 of 10 (0.44–0.97) vs control 2 of 10 (0.03–0.56)")
    assert claims.more_runs("c", "succeed", control, control).verdict == "no"
    assert claims.more_runs("c", "succeed", [True, True], [False]).verdict == "not decidable"
    fewer = claims.more_runs("c", "succeed", control, mi, alternative="less")
    assert fewer.verdict == "yes" and "fewer runs succeed" in fewer.rule


def test_persistence_says_no_for_runs_that_fade_and_yes_for_runs_that_stay():
    fade = claims.persists("c", "Q_corr", np.linspace(0.0, 0.3, 10))
    assert fade.verdict == "no" and "above 50% in 0 of 10 runs" in fade.numbers
    stay = claims.persists("c", "Q_corr", np.linspace(0.7, 1.0, 10))
    assert stay.verdict == "yes"
    assert claims.persists("c", "Q_corr", [0.9, 0.95, 1.0]).verdict == "not decidable"
    assert "(2 never rose)" in claims.persists("c", "Q", [0.9, np.nan, np.nan, 1.0]).numbers


def test_a_measure_that_finds_precedence_in_the_controls_too_is_uninformative():
    later = np.arange(1.0, 11.0) * 25
    mixed = np.array([25.0, -25, 50, -50, 75, -75, 25, -25, 0, 0])
    rows = claims.precedence_against_control("c", {"m": later}, {"m": later})
    assert rows[0].verdict == "uninformative" and "on the controls:" in rows[0].numbers
    rows = claims.precedence_against_control("c", {"m": later}, {"m": mixed})
    assert rows[0].verdict == "yes"
    words = claims.summary(claims.table(claims.precedence_against_control(
        "c", {"m": later}, {"m": later})))
    assert words.loc[0, "rules"] == "1 uninformative of 1 rule"


def test_the_rising_limb_finds_no_precedence_in_controls_that_never_differentiate():
    # controls: both indices wander around a constant level; nothing rises for long
    rng = np.random.default_rng(3)
    epochs = np.arange(0, 1001, 25)
    rows = []
    for run in range(10):
        for name in ("D_corr", "D_out"):
            values = 0.1 + 0.02 * rng.standard_normal(epochs.size)
            rows.append(pd.DataFrame({"run": run, "epoch": epochs, "index": name, "v": values}))
    table = pd.concat(rows).pivot_table(index=["run", "epoch"], columns="index", values="v").reset_index()
    lags = analysis.rising_lags(table, "D_corr", "D_out")
    assert claims.precedence("c", {"rising limb": lags})[0].verdict != "yes"


def test_fraction_choice_takes_the_smallest_share_whose_every_check_passes():
    checks = pd.DataFrame({"fraction": [0.1, 0.1, 0.25, 0.25, 0.5],
                           "ok": [True, False, True, True, True]})
    assert claims.fraction_choice(checks) == 0.25
    assert claims.fraction_choice(checks.assign(ok=False)) is None
