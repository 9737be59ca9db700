"""The parts of the authors'-code comparison that run without TensorFlow (reference/)."""
import json

import numpy as np
import pytest

from mifd import store
from reference import authors_runs, step_differential


def _quantities(rng):
    """A made-up set of every array `step_differential.differences` reads."""
    arrays = {}
    for keys in step_differential.QUANTITIES.values():
        for key in keys:
            arrays[key] = rng.standard_normal((3, 4)).astype(np.float32)
    start = {k.split("_", 1)[0] + "." + k.split(".", 1)[1]: v - 0.01
             for k, v in arrays.items() if "_after" in k}
    return arrays, start


def test_identical_steps_agree_and_a_changed_tensor_is_named():
    rng = np.random.default_rng(0)
    theirs, start = _quantities(rng)
    rows = step_differential.differences(dict(theirs), theirs, start)
    assert all(r["within_rounding"] and r["max_abs_difference"] == 0 for r in rows)

    ours = dict(theirs)
    ours["critic_grad.dense_hidden.weight"] = theirs["critic_grad.dense_hidden.weight"] * 1.01
    rows = {r["quantity"]: r for r in step_differential.differences(ours, theirs, start)}
    assert not rows["∇(−Î), critic"]["within_rounding"]
    assert rows["∇(−Î), critic"]["largest_in"] == "dense_hidden.weight"
    assert sum(not r["within_rounding"] for r in rows.values()) == 1


def test_a_step_is_judged_against_the_step_not_the_weight():
    rng = np.random.default_rng(1)
    theirs, start = _quantities(rng)
    ours = dict(theirs)
    # a tenth of the authors' 0.01 step: negligible beside the weights (≈ 1), not beside it
    ours["model_after.w_rec"] = theirs["model_after.w_rec"] + 0.001
    rows = {r["quantity"]: r for r in step_differential.differences(ours, theirs, start)}
    assert rows["model after one step"]["relative"] == pytest.approx(0.1, rel=1e-3)
    assert not rows["model after one step"]["within_rounding"]


def _driver_outputs(run, epochs=50, died=None):
    rng = np.random.default_rng(2)
    losses = {k: rng.random(epochs) for k in authors_runs.HISTORY_NAMES}
    if died is not None:
        losses["mi_before"][died - 1:] = -np.inf
    snaps = np.arange(0, epochs + 1, 25)
    arrays = {f"loss_{k}": v for k, v in losses.items()}
    arrays.update({"snapshot_epoch": snaps,
                   "snapshot_w_rec": rng.standard_normal((len(snaps), 40, 40)),
                   "snapshot_w_in": rng.standard_normal((len(snaps), 4, 40)),
                   "snapshot_w_out": rng.standard_normal((len(snaps), 40, 2)),
                   "final_b": rng.standard_normal(40), "final_b_out": rng.standard_normal(2)})
    run.mkdir(parents=True)
    np.savez(run / "run.npz", **arrays)
    (run / "run.json").write_text(json.dumps({
        "epochs_done": epochs, "died_at": died, "seconds": 10.0 * epochs,
        "tensorflow": "2.x", "tf_keras": "2.x",
        "set": {"epochs": epochs, "lambda_mi": 0.1, "initial_mine_epoch": 100}}))
    return arrays


def test_a_finished_authors_run_becomes_a_mifd_record(tmp_path):
    arrays = _driver_outputs(tmp_path / "run")
    config = authors_runs.run_config(0.1, 50)
    directory = authors_runs.store_run(tmp_path / "run", config, 3, "abc", 2,
                                       root=tmp_path / "results")
    record = store.load_record(directory)
    assert record.config.training.lambda_mi == 0.1 and record.config.profile == "paper+custom"
    np.testing.assert_array_equal(record.history["mi_before"], arrays["loss_mi_before"])
    np.testing.assert_array_equal(record.history["accuracy"], arrays["loss_accs"])
    assert list(record.snapshot_epochs) == [0, 25, 50]
    assert record.snapshots["b"].shape == (3, 40)
    np.testing.assert_allclose(record.snapshots["b"][0], arrays["final_b"], rtol=1e-6)
    assert record.provenance["repository_commit"] == "abc"
    assert record.provenance["died_at"] is None
    assert record.provenance["seconds_per_epoch"] == pytest.approx(10.0)


def test_the_first_non_finite_epoch_is_the_death():
    history = {"loss": np.ones(10), "mi_before": np.ones(10)}
    assert authors_runs.first_death(history) is None
    history["mi_before"][6] = -np.inf
    history["loss"][8] = np.nan
    assert authors_runs.first_death(history) == 7


def test_the_book_reads_stored_authors_runs(tmp_path):
    from mifd import evidence

    _driver_outputs(tmp_path / "run", died=40)
    authors_runs.store_run(tmp_path / "run", authors_runs.run_config(0.1, 50), 3, "abc", 2,
                           root=tmp_path / "reference")
    records = evidence.authors_records(tmp_path)
    table = evidence.authors_table(records)
    assert len(table) == 1 and table.loc[0, "died at"] == 40
    assert table.loc[0, "collapses"] == 11  # epochs 40–50 are −inf
    assert evidence.authors_records(tmp_path / "nothing") == []


def test_the_step_report_reads_as_sentences():
    from mifd import evidence

    rows = [{"quantity": "states x", "max_abs_difference": 1e-7, "largest_in": "states",
             "scale": 1.0, "relative": 1e-7, "within_rounding": True},
            {"quantity": "output bias after it", "max_abs_difference": 4e-3,
             "largest_in": "dense_out.bias", "scale": 4e-3, "relative": 1.0,
             "within_rounding": False}]
    report = {"cases": {"initial networks": {"rows": rows}}, "tolerance": 2.4e-3,
              "authors_commit": "59a2f799", "tensorflow": "2.21.0", "tf_keras": "2.21.0",
              "mifd_commit": "abcdef12", "cpu": "AMD"}
    text = evidence.step_differential_summary(report)
    assert "1 of 2 quantities agree" in text and "output bias after it (dense_out.bias" in text
    table = evidence.step_differential_table(report)
    assert list(table["initial networks"]) == ["1e-07: rounding", "1: differs"]


def test_the_front_page_clause_names_what_differs():
    from mifd import evidence

    def report(*differing):
        rows = [{"quantity": q, "largest_in": q, "within_rounding": q not in differing,
                 "relative": 1.0, "max_abs_difference": 1.0, "scale": 1.0}
                for q in ("states", "dense_out.bias", "w_rec")]
        return {"cases": {"initial networks": {"rows": rows}}}

    assert "within float32 rounding" in evidence.step_differential_short(report())
    assert "output bias" in evidence.step_differential_short(report("dense_out.bias"))
    assert evidence.step_differential_short(report("w_rec")).endswith("in w_rec.")
    assert evidence.step_differential_short(None).startswith("no step")


def test_a_many_step_quantity_is_judged_against_mifd_against_itself():
    rows = [{"quantity": "critic after 50 steps", "relative": 0.3, "within_rounding": False},
            {"quantity": "states x", "relative": 1e-7, "within_rounding": True}]
    loose = step_differential.against_control(rows, [{"quantity": "critic after 50 steps",
                                                      "relative": 0.2}])
    assert loose[0]["within_rounding"] and loose[0]["control_relative"] == 0.2
    assert loose[1] == rows[1]
    tight = step_differential.against_control(rows, [{"quantity": "critic after 50 steps",
                                                      "relative": 0.01}])
    assert not tight[0]["within_rounding"]
