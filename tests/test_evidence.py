"""The evidence tables the claim rules read: hand-made parameters, then smoke runs end to end."""
import numpy as np
import pandas as pd
import pytest

from mifd import analysis, claims, evaluate, evidence, machine, separation, train
from mifd.config import profile


def test_weight_differences_and_alignment_by_hand():
    w_out = np.array([[1.0, 0.0], [0.0, -2.0], [0.5, 0.5]])
    w_in = np.zeros((4, 3))
    (on1, off1), (on2, off2) = analysis.BIT_ROWS
    w_in[on1], w_in[off2] = [1.0, 0.0, 2.0], [0.0, 3.0, -1.0]
    d = analysis.weight_differences({"w_out": w_out, "w_in": w_in})
    np.testing.assert_allclose(list(d.values())[0], [1.0, -2.0, 0.0])
    np.testing.assert_allclose(list(d.values())[1], [1.0, -3.0, 1.0])
    c = np.array([[0.9, 0.1], [0.1, -0.8], [0.4, 0.5]])  # d = 0.8, −0.7, −0.1
    r = analysis.weight_alignment({"w_out": w_out, "w_in": w_in}, c)
    assert r["r(d, d_out)"] == pytest.approx(np.corrcoef([0.8, -0.7, -0.1], [1, -2, 0])[0, 1])
    assert set(r) == {"r(d, d_out)", "r(d, d_in)"}


@pytest.fixture(scope="module")
def smoke_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    base = profile("smoke", "wm")
    return {label: [train.train_wm(base.replace(**{"training.lambda_mi": lam}), seed, root=root,
                                   progress=False) for seed in (1, 2, 3)]
            for label, lam in (("MI", 0.1), ("control", 0.0))}


def test_wm_evidence_tables_agree_with_the_records(smoke_records):
    ev = evidence.wm_evidence(smoke_records, seed=0, differentiation_q=-1.0)
    runs = [r for rs in smoke_records.values() for r in rs]
    assert len(ev.finals) == len(ev.alignment) == len(runs) == 6
    assert len(ev.courses) == sum(len(r.snapshot_epochs) for r in runs)
    record = smoke_records["MI"][1]
    row = ev.finals[(ev.finals["condition"] == "MI") & (ev.finals["seed"] == record.seed)].iloc[0]
    assert row["epoch"] == record.snapshot_epochs[-1]
    assert row["accuracy"] == pytest.approx(record.history["accuracy"][-1])
    direct = evaluate.final_indices(record, 0)
    assert row["Q_str"] == pytest.approx(direct["Q_str"]) and row["D_out"] == pytest.approx(direct["D_out"])
    # with a threshold below every Q_str, differentiated is exactly successful
    assert (ev.finals["differentiated"] == ev.finals["success"]).all()
    # the verdicts are the claim rules applied to these tables, MI against control
    expected = claims.table(claims.wm_claims(
        ev.finals[ev.finals["condition"] == "MI"], ev.finals[ev.finals["condition"] == "control"],
        evidence.wm_lags(ev.courses, "MI")["Q_corr → Q_str"]))
    # the final alignment is the last snapshot's, computed on the same replay as its indices
    parameters = evaluate.final_parameters(record.snapshots)
    replay = evaluate.replay_wm(record.config, parameters, 0)
    c = analysis.target_correlations(replay.x, replay.targets, record.config.task.n_transient)
    expected_r = analysis.weight_alignment(parameters, c)
    for name in analysis.ALIGNMENT_COLUMNS:
        assert row[name] == pytest.approx(expected_r[name], nan_ok=True)
    pd.testing.assert_frame_equal(ev.verdicts, expected)
    one = evidence.wm_verdicts(ev.finals, ev.courses, "MI", "control", seeds=[2])
    tested = one[one["rule"].str.contains("exact")]
    assert len(tested) and (tested["verdict"] == "not decidable").all()  # 1 run against 1


def test_separation_finals_carry_nmi_and_the_last_epoch(tmp_path):
    config = profile("smoke", "separation")
    records = {label: [separation.train_separation(config.replace(**{"training.lambda_mi": lam}), 2,
                                                   root=tmp_path, progress=False)]
               for label, lam in (("MI", 0.005), ("control", 0.0))}
    finals = evidence.separation_finals(records)
    assert list(finals["condition"]) == ["MI", "control"]
    record = records["MI"][0]
    for key in evidence.R2_COLUMNS:  # the replayed final network scores as the last epoch did
        assert finals.loc[0, key] == pytest.approx(record.history[key][-1], abs=1e-6)
    assert 0.0 <= finals.loc[0, evidence.NMI_CORR] <= 1.0 and 0.0 <= finals.loc[0, evidence.NMI_WEIGHTS] <= 1.0
    courses = evidence.separation_courses(records["MI"])
    assert len(courses) == len(record.history["loss"]) and list(courses["epoch"])[0] == 1
    table = evidence.separation_verdicts(finals, courses, "MI", "control")
    assert table.loc[0, "claim"] == "high performance"


def test_half_preferences_tell_a_lorenz_rossler_split_from_a_shared_lean():
    rng = np.random.default_rng(5)
    b, t = 2, 2000
    lorenz, rossler = rng.normal(size=(b, t, 1)), rng.normal(size=(b, t, 1))
    y = np.concatenate([lorenz + 0.05 * rng.normal(size=(b, t, 3)),
                        rossler + 0.05 * rng.normal(size=(b, t, 3))], axis=-1)
    noise = lambda: 0.3 * rng.normal(size=(b, t, 3))
    split = np.concatenate([lorenz + noise(), rossler + noise()], axis=-1)   # G1 Lorenz, G2 Rössler
    shared = np.concatenate([lorenz + noise(), lorenz + noise()], axis=-1)   # both halves Lorenz
    replays = {(name, 1): evaluate.SeparationReplay(None, None, h, y)
               for name, h in (("split", split), ("shared", shared))}
    table = evidence.half_preferences(replays).set_index("condition")
    assert table.loc["split", "halves lean apart"] and not table.loc["shared", "halves lean apart"]
    assert table.loc["split", "G1: C^L − C^R"] > 0.5 > -0.5 > table.loc["split", "G2: C^L − C^R"]


def test_separation_search_reads_stored_variants_and_names_the_missing(tmp_path):
    base = profile("smoke", "separation")
    record = separation.train_separation(base, 1, root=tmp_path, progress=False)
    variants = {"as is": {}, "longer sequences": {"task.seq_len": 2000}}
    table, commands = evidence.separation_search(base, variants, [1], tmp_path)
    assert list(table["variant"]) == ["as is"]
    assert table.loc[0, "CPU"] == machine.cpu_name(machine.cpu())
    assert table.loc[0, "R² (t ≥ washout)"] == pytest.approx(record.history["r2_mean_scored"][-1],
                                                             abs=1e-6)
    assert commands.count("mifd sweep separation") == 1 and "--set task.n_samples=2400" in commands
    longer = evidence.search_config(base, variants["longer sequences"]).task
    assert longer.seq_len == 2000
    assert longer.lorenz_t_end / longer.n_samples == pytest.approx(100.0 / 14_000)  # paper's interval


def test_study_finals_add_settings_onsets_and_block_sparsity(smoke_records):
    finals = evidence.study_finals(smoke_records, seed=0)
    assert len(finals) == 6 and set(finals["lambda"]) == {0.1, 0.0} and set(finals["c_l1"]) == {0.0}
    for column in ("t50 Q_corr", "t50 Q_str", "near-zero G1→G2", "Q_str / Q_corr", "near-zero"):
        assert column in finals
    row = finals.iloc[0]
    assert row["near-zero between − within"] == pytest.approx(
        (row["near-zero G1→G2"] + row["near-zero G2→G1"] - row["near-zero G1→G1"] - row["near-zero G2→G2"]) / 2)
    functional = finals["Q_corr"] > 0.1       # the ratio only where there is functional modularity
    assert finals.loc[~functional, "Q_str / Q_corr"].isna().all()
    assert np.allclose(finals.loc[functional, "Q_str / Q_corr"],
                       finals.loc[functional, "Q_str"] / finals.loc[functional, "Q_corr"])
    never = finals["Q_str"] <= 0.1            # smoke runs never pass 0.1: one epoch past the last snapshot
    assert (finals.loc[never, "epoch Q_str > 0.1"] == finals.loc[never, "epoch"] + 1).all()
    shares = finals[[f"near-zero {b}" for b in analysis.BLOCKS]].to_numpy()
    assert ((shares >= 0) & (shares <= 1)).all()
    # at the start W_rec ~ N(0, 1/N): about 2Φ(0.1) − 1 ≈ 8 % of the weights lie within 0.1/√N
    assert finals["near-zero at start"].between(0.0, 0.25).all()


def test_pilot_strengths_keep_the_largest_that_stay_accurate():
    pilot = pd.DataFrame({"c_l1": [1e-5, 1e-4, 1e-3, 1e-2], "accuracy": [0.95, 0.93, 0.91, 0.6]})
    assert claims.pilot_strengths(pilot, 2) == [1e-4, 1e-3]
    assert claims.pilot_strengths(pilot, 5) == [1e-5, 1e-4, 1e-3]
    assert claims.pilot_strengths(pilot.assign(accuracy=0.5), 2) == []


def test_search_costs_are_relative_to_a_book_epoch_on_the_same_processor_and_choose_by_the_rule():
    variants = {"book": {}, "60 epochs": {"training.epochs": 60}, "fewer steps": {"training.n_sm_steps": 2}}
    search = pd.DataFrame([
        {"variant": "book", "CPU": "not recorded", "epochs": 30, "core-seconds per epoch": 28.0,
         "R² (t ≥ washout)": 0.94},
        {"variant": "60 epochs", "CPU": "slow", "epochs": 60, "core-seconds per epoch": 90.0,
         "R² (t ≥ washout)": 0.97},
        {"variant": "fewer steps", "CPU": "slow", "epochs": 30, "core-seconds per epoch": 45.0,
         "R² (t ≥ washout)": 0.95},
        {"variant": "fewer steps", "CPU": "elsewhere", "epochs": 30, "core-seconds per epoch": 9.0,
         "R² (t ≥ washout)": 0.95}])
    search["× book"] = evidence.search_relative_cost(search, variants, book_epochs=30)
    assert search["× book"].iloc[:3].tolist() == [1.0, 2.0, 0.5] and np.isnan(search["× book"].iloc[3])
    assert claims.search_choice(search, budget=2.2) == "60 epochs"
    assert claims.search_choice(search, budget=1.5) == "book"       # too dear
    assert claims.search_choice(search, budget=2.2, preferred=0.98) == "book"


def test_the_search_starts_from_book_as_searched_and_reads_its_stored_records():
    start = evidence.search_config(profile("book", "separation"), evidence.SEARCH_BASE)
    assert start.training.epochs == 30
    hashes = {name: evidence.search_config(start, changes).config_hash()
              for name, changes in evidence.SEPARATION_SEARCH.items()}
    assert hashes["book"] == "a8f0e20fe99b" and hashes["60 epochs"] == "334b1443198e"
    assert claims.SEARCH_BUDGET == pytest.approx(48 / 19.0)


def test_end_of_training_reads_the_peak_and_the_last_snapshot():
    courses = pd.DataFrame({  # seed 1 loses its functional modularity; a control beside them
        "condition": ["MI"] * 6 + ["control"] * 2, "seed": [1, 1, 1, 2, 2, 2, 1, 1],
        "epoch": [300, 100, 200, 100, 200, 300, 100, 200],  # out of order on purpose
        "Q_corr": [0.05, 0.2, 0.45, 0.1, 0.3, 0.33, 0.9, 0.9],
        "D_corr": [0.2, 0.6, 0.9, 0.4, 0.8, 0.93, 0.9, 0.9],
        "Q_str": [0.12, 0.01, 0.05, 0.0, 0.05, 0.09, 0.5, 0.5]})
    table = evidence.end_of_training(courses, "MI").set_index("seed")
    assert table.loc[1, "highest Q_corr"] == 0.45 and table.loc[1, "at epoch"] == 200
    assert table.loc[1, "epoch"] == 300 and table.loc[1, "Q_corr"] == 0.05
    assert not table.loc[1, "functional at the end"] and table.loc[1, "structural at the end"]
    assert table.loc[2, "functional at the end"] and not table.loc[2, "structural at the end"]
    assert evidence.end_of_training(courses, "MI", differentiation_q=0.08).loc[1, "structural at the end"]


def _runs_with(label_histories):
    """{label: [stand-in records]} with the history keys collapse_table reads."""
    from types import SimpleNamespace

    return {label: [SimpleNamespace(seed=seed, history={"mi_before": mi, "accuracy": acc})
                    for seed, (mi, acc) in histories.items()]
            for label, histories in label_histories.items()}


def test_end_table_reads_the_last_snapshots_and_epochs_and_counts_the_paper_end():
    epochs = 600
    steady, collapsing = np.full(epochs, 0.3), np.where(np.arange(epochs) % 2, -5.0, 0.3)
    records = _runs_with({"A": {1: (steady, np.full(epochs, 0.95)), 2: (collapsing, np.r_[np.full(550, 0.99), np.full(50, 0.85)])}})
    snapshots = np.arange(0, epochs + 1, 100)
    d_corr = {1: [0.1, 0.9, 0.9, 0.2, 0.8, 0.8, 0.8], 2: [0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]}
    courses = pd.DataFrame([{"condition": "A", "seed": s, "epoch": e, "Q_corr": 0.3, "D_corr": d,
                             "Q_str": 0.05 * s} for s in (1, 2) for e, d in zip(snapshots, d_corr[s])])
    table = evidence.end_table(courses.sample(frac=1, random_state=0), records).set_index("seed")
    assert table.loc[1, "D_corr end"] == pytest.approx(np.mean([0.9, 0.2, 0.8, 0.8, 0.8]))
    assert table.loc[1, "accuracy end"] == pytest.approx(0.95) and table.loc[2, "accuracy end"] == pytest.approx(0.85)
    assert table.loc[1, "paper end"] and not table.loc[2, "paper end"]  # seed 2 ends at 0.85
    assert table.loc[2, "late share"] == pytest.approx(0.5) and table.loc[1, "late share"] == 0
    assert not table.loc[1, "structural"] and not table.loc[2, "structural"]
    counts = evidence.end_counts(table.reset_index())
    assert counts.loc["end as the paper describes", "A"].startswith("1 of 2")
    assert counts.loc["late collapse share, median", "A"] == "25.0%"


def _ends(label, paper, d_corr, share):
    return pd.DataFrame({"condition": label, "seed": range(len(paper)), "paper end": paper,
                         "D_corr end": d_corr, "late share": share})


def test_the_departure_rule_names_a_variant_only_where_its_runs_end_as_the_paper_describes():
    reference, well_posed, dose = ("λ = 0.1, authors' critic", "λ = 0.1, well-posed critic",
                                   "λ = 0.3, authors' critic")
    n = 10
    ends = pd.concat([
        _ends(reference, [True] + [False] * (n - 1), np.linspace(0.1, 0.6, n), np.linspace(0.1, 0.3, n)),
        _ends(well_posed, [True] * n, np.linspace(0.8, 0.9, n), np.zeros(n)),
        _ends(dose, [True] + [False] * (n - 1), np.linspace(0.1, 0.6, n), np.linspace(0.1, 0.3, n))])
    verdicts = evidence.departure_verdicts(ends, reference, [well_posed, dose, "absent"])
    assert set(verdicts) == {well_posed, dose}
    assert list(verdicts[well_posed]["verdict"]) == ["yes", "yes", "yes"]
    assert list(verdicts[dose]["verdict"]) == ["no", "no", "no"]  # nothing happens: the rule fails
    short = evidence.departure_short(ends, reference, [well_posed, dose, "absent"])
    assert short.startswith("with the well-posed critic at λ = 0.1, 10 of 10 runs end as the paper "
                            "describes, against 1 of 10 with the authors' critic at λ = 0.1 (exact "
                            "one-sided Fisher p = ")
    assert "not detectably more)" in short and "interim" not in short
    assert "interim" in evidence.departure_short(ends.iloc[:-1], reference, [dose])
    text = evidence.departure_text(ends, reference, [well_posed, dose, "absent"], pushes_less=False)
    assert "10 of 10 (0.69–1.00) runs end as the paper describes, against 1 of 10" in text
    assert "By the rule only the well-posed critic at λ = 0.1 explains the departure" in text
    assert "the authors' noise form is what makes these runs depart" in text
    assert "the row share is not what sets the book's runs apart, as far as that measurement goes" in text
    swapped = evidence.departure_text(ends.replace({well_posed: dose, dose: well_posed}), reference,
                                      [well_posed, dose], pushes_less=None)
    assert "By the rule only the authors' critic at λ = 0.3 explains the departure" in swapped
    assert "a larger λ restores" in swapped and "measurement goes" not in swapped
    restored = _ends(reference, [True] + [False] * (n - 1), np.linspace(0.1, 0.6, n), np.linspace(0.1, 0.3, n))
    both = evidence.departure_text(pd.concat([
        restored, _ends(well_posed, [True] * n, np.full(n, 0.9), np.zeros(n)),
        _ends(dose, [True] * n, np.full(n, 0.8), np.full(n, 0.05))]), reference, [well_posed, dose], None)
    assert "By the rule both variants explain the departure" in both and "gets there at λ = 0.3" in both
    neither = evidence.departure_text(pd.concat([
        restored, _ends(dose, [False] * n, np.full(n, 0.3), np.full(n, 0.2))]), reference, [dose], None)
    assert "neither variant explains" in neither


def test_too_few_runs_leave_the_departure_undecided():
    ends = pd.concat([_ends("λ = 0.1, authors' critic", [False, False], [0.1, 0.2], [0.2, 0.3]),
                      _ends("λ = 0.1, well-posed critic", [True, True], [0.9, 0.8], [0.0, 0.0])])
    table = evidence.departure_verdicts(ends, "λ = 0.1, authors' critic", ["λ = 0.1, well-posed critic"])
    assert set(next(iter(table.values()))["verdict"]) == {"not decidable"}
    text = evidence.departure_text(ends, "λ = 0.1, authors' critic", ["λ = 0.1, well-posed critic"], None)
    assert "too few runs to decide" in text and "by the rule" not in text.lower()


def test_departure_conditions_differ_from_the_reference_in_one_setting_each():
    conditions = evidence.departure_conditions("smoke", 0.1, 0.3)
    reference, control, well_posed, dose = conditions.values()
    assert list(conditions)[0] == "λ = 0.1, authors' critic" and reference.estimator.noise_asymmetric
    assert control.training.lambda_mi == 0 and not well_posed.estimator.noise_asymmetric
    assert well_posed.replace(**{"estimator.noise_asymmetric": True}) == reference
    assert dose.replace(**{"training.lambda_mi": 0.1}) == reference


def test_carrier_table_pools_the_runs_that_log_the_bound_terms():
    from types import SimpleNamespace

    config = profile("smoke", "wm")
    rows = config.task.batch_size * config.task.n_learn  # smoke's critic sees every row
    logged = {"mi_before": [0.3, -5.0, -6.0], "mi_joint_term": [0.3, 0.1, 0.2],
              "mi_marginal_term": [0.0, 5.1, 6.2], "marginal_score_max": [1.0, 5.1 + np.log(rows), 9.0]}
    runs = [SimpleNamespace(config=config, history=logged),
            SimpleNamespace(config=config, history={"mi_before": [-9.0, -9.0, -9.0]})]  # an old record
    table = evidence.carrier_table({"A": runs, "old": runs[1:]})
    assert list(table["condition"]) == ["A"] and table.loc[0, "runs"] == 1
    assert table.loc[0, "collapsed epochs"] == 2 and table.loc[0, "critic rows"] == rows
    n_eff = np.exp(np.array([5.1, 6.2]) - np.array([5.1 + np.log(rows), 9.0]) + np.log(rows))
    assert table.loc[0, "samples carrying a collapse, median"] == pytest.approx(np.median(n_eff))
    assert table.loc[0, "top score above joint, other epochs (nats)"] == pytest.approx(0.7)


def test_stored_text_names_the_conditions_still_short_of_seeds():
    from types import SimpleNamespace

    records = {"A": [SimpleNamespace(seed=s) for s in (1, 2, 3)],
               "B": [SimpleNamespace(seed=s) for s in (1, 2)]}
    assert evidence.stored_text(records, [1, 2, 3]) == (
        "Interim: B has 2 of its 3 seeds stored (1-2); the verdicts read the runs stored so far.")
    assert evidence.stored_text({"A": records["A"]}, [1, 2, 3]) == ""


def test_carrier_text_says_how_many_samples_carry_a_collapse():
    table = pd.DataFrame([
        {"condition": "A", "runs": 5, "collapsed epochs": 325, "critic rows": 4000,
         "samples carrying a collapse, median": 1.0, "top score above joint, collapsed (nats)": 11.73,
         "top score above joint, other epochs (nats)": 3.21},
        {"condition": "B", "runs": 3, "collapsed epochs": 0, "critic rows": 4000,
         "samples carrying a collapse, median": float("nan"),
         "top score above joint, collapsed (nats)": float("nan"),
         "top score above joint, other epochs (nats)": 2.18}])
    text = evidence.carrier_text(table)
    assert text == ("In the 325 collapsed epochs of A (5 runs), a median of 1 of the 4000 marginal "
                    "samples carries the log-mean-exp, the top score standing 11.7 nats above the joint "
                    "term (3.2 in the other epochs): one exploding score makes a collapse.")
    assert evidence.carrier_text(table.iloc[1:]) == ""


def test_the_pilot_is_held_against_its_own_paper_seed_or_a_stand_in_and_says_what_was_lost():
    epochs = np.arange(0, 1001, 25)
    paper = {"mi": np.full(1000, 0.9), "accuracy": np.full(1000, 0.95), "epoch": epochs,
             "Q_corr": np.full(epochs.size, 0.3)}
    control = {**paper, "mi": np.full(1000, 2.3)}
    escaped = {**paper, "mi": np.full(1000, 2.0)}
    checks = evidence.pilot_checks({(0.1, 1): escaped, (0.25, 1): paper, (0.25, 7): paper},
                                   {1: paper}, {1: control})
    assert set(checks["reference"]) == {"paper seed 1"} and len(checks) == 9
    text = evidence.pilot_text(checks, [0.1, 0.25], {1: paper}, book_fraction=0.1)
    assert "- 0.1 of the rows: 0 of 1 runs keep the constraint; lost: seed 1 (Î)." in text
    assert "the rule chooses 0.25 of the rows" in text and "which is not what the rule chooses" in text
