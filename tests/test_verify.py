"""`mifd verify`: a stored record re-trained for its first epochs, compared value by value."""
import numpy as np
import pytest

from mifd import machine, train, verify
from mifd.cli import main
from mifd.config import profile

SMOKE = profile("smoke", "wm")


def test_compare_histories():
    a = {"loss": np.array([1.0, 2.0, 3.0]), "mi": np.array([np.nan, 0.5, 0.5])}
    assert verify.compare_histories(a, dict(a), 3)["identical"]
    b = {"loss": np.array([1.0, 2.0 * (1 + 1e-6), 9.0]), "mi": a["mi"]}
    result = verify.compare_histories(a, b, 2)  # epoch 3 is not compared
    assert not result["identical"] and result["first_differing_epoch"] == 2
    assert result["largest_relative_difference"] == pytest.approx(1e-6, rel=1e-3)
    assert result["in"] == "loss"


def test_a_record_verifies_bit_for_bit_on_the_machine_that_made_it(tmp_path, capsys):
    record = train.train_wm(SMOKE, 3, root=tmp_path, progress=False)
    assert record.provenance["cpu"] == machine.cpu()
    result = verify.verify(record.path, epochs=2)
    assert result["identical"] and result["same_cpu"] is True
    assert main(["verify", str(record.path), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "bit-identical over the first 2 epochs (re-trained alone)" in out
    assert "processor, threads, commit and cohort are the record's" in out


def test_verify_refuses_what_is_not_a_record(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 2
    assert "not a complete record" in capsys.readouterr().err
    record = train.train_wm(SMOKE, 3, root=tmp_path, progress=False)
    assert main(["verify", str(record.path), "--epochs", "999"]) == 2
    assert "--epochs must lie in" in capsys.readouterr().err


def test_a_cohort_record_verifies_bit_for_bit_in_its_cohort_and_alone_says_what_differs(
        tmp_path, capsys):
    configs = [SMOKE.replace(**{"training.lambda_mi": lam}) for lam in (0.1, 0.0)]
    records = train.train_wm_cohort(configs, [5, 5], root=tmp_path, progress=False)
    target = records[1]
    result = verify.verify(target.path, epochs=2)
    assert result["identical"] and result["retrained"] == "cohort"
    assert main(["verify", str(target.path), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "re-trained in its cohort of 2 runs" in out
    assert "processor, threads, commit and cohort are the record's" in out
    alone = verify.verify(target.path, epochs=2, alone=True)
    lines = verify.report(alone)
    assert "re-trained alone" in lines and "cohort: the record trained in a cohort of 2" in lines
    if not alone["identical"]:  # whatever it measured, it prints per key, never a guess
        assert all(f"  {key}:" in lines for key in alone["per_key"])


def test_verify_names_the_missing_member_and_offers_alone(tmp_path, capsys):
    import shutil

    configs = [SMOKE.replace(**{"training.lambda_mi": lam}) for lam in (0.1, 0.0)]
    records = train.train_wm_cohort(configs, [5, 5], root=tmp_path, progress=False)
    shutil.rmtree(records[0].path)
    assert main(["verify", str(records[1].path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--alone" in err
    assert main(["verify", str(records[1].path), "--alone"]) in (0, 1)


def test_a_changed_thread_count_is_named(tmp_path):
    record = train.train_wm(SMOKE, 3, root=tmp_path, progress=False)
    result = verify.verify(record.path, epochs=1)
    assert not verify.differences(result)
    result["record_threads"] = result["this_threads"] + 1
    assert any(d.startswith("threads:") for d in verify.differences(result))


def test_cohort_departure_is_zero_for_a_cohort_of_one_and_names_every_key(tmp_path):
    rows = verify.cohort_departure([SMOKE], [2], epochs=2, root=tmp_path)
    assert {r["key"] for r in rows} >= {"loss", "mi_before", "accuracy"}
    assert all(r["largest"] == 0 and r["first_differing_epoch"] is None for r in rows)


def test_departure_summary_takes_the_median_and_the_largest_per_key():
    rows = [{"lambda_mi": 0.1, "seed": s, "key": "mi_before", "first_differing_epoch": e,
             "largest": big, "at_end": end}
            for s, e, big, end in ((1, 2, 0.5, 0.1), (2, 1, 0.9, 0.3), (3, None, 0.0, 0.0))]
    row = verify.departure_summary(rows).iloc[0]
    assert row["runs"] == 3 and row["first_epoch"] == 1
    assert row["median_at_end"] == 0.1 and row["largest_at_end"] == 0.3 and row["largest"] == 0.9
