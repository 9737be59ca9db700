"""Run records: atomic, complete only with their manifest, altered files detected."""
import hashlib
import json

import numpy as np
import pytest

from mifd import files, store, train
from mifd.config import profile

CONFIG = SMOKE = profile("smoke", "wm")


def _save(root, seed=1):
    return store.save_record(
        CONFIG, seed, {"mse": [1.0, 0.5], "accuracy": [0.5, 0.75]},
        {"w_rec": np.ones((2, 4, 4), np.float32)}, np.array([0, 2]),
        store.provenance({"train_seconds": 1.0}), root,
    )


def test_saved_record_round_trips(tmp_path):
    directory = _save(tmp_path)
    record = store.find_record(CONFIG, 1, tmp_path)
    assert record.path == directory and record.config == CONFIG and record.seed == 1
    assert record.history["accuracy"].tolist() == [0.5, 0.75]
    assert record.snapshots["w_rec"].shape == (2, 4, 4)
    assert record.snapshot_epochs.tolist() == [0, 2]
    assert record.provenance["torch"].startswith("2.13.0")
    assert "git_commit" in record.provenance


def test_record_directory_is_keyed_by_task_hash_and_seed(tmp_path):
    assert _save(tmp_path, seed=3) == tmp_path / "wm" / CONFIG.config_hash() / "seed-3"


def test_record_without_manifest_is_not_complete(tmp_path):
    directory = _save(tmp_path)
    (directory / store.MANIFEST).unlink()
    assert not store.is_complete(directory)
    assert store.find_record(CONFIG, 1, tmp_path) is None
    with pytest.raises(store.RecordError, match="incomplete"):
        store.load_record(directory)


@pytest.mark.parametrize("name", store.RECORD_FILES)
def test_altered_or_truncated_file_is_refused_naming_it(tmp_path, name):
    directory = _save(tmp_path)
    path = directory / name
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(store.RecordError, match=name):
        store.load_record(directory)


def test_manifest_lists_checksums_of_every_file(tmp_path):
    manifest = json.loads((_save(tmp_path) / store.MANIFEST).read_text())
    assert set(manifest) == set(store.RECORD_FILES)
    assert all(len(v) == 64 for v in manifest.values())


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    files.atomic_write_bytes(tmp_path / "a.bin", b"x" * 10)
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_git_commit_marks_code_changes_but_not_record_changes(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "results" / "record.json").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    (tmp_path / "results" / "record.json").unlink()
    assert not store.git_commit(tmp_path).endswith("+dirty")
    (tmp_path / "code.py").write_text("a = 2\n")
    assert store.git_commit(tmp_path).endswith("+dirty")


def test_git_commit_outside_git_names_the_copied_commit_or_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("MIFD_GIT_COMMIT", raising=False)
    assert store.git_commit(tmp_path) == "unknown"
    monkeypatch.setenv("MIFD_GIT_COMMIT", "0123abc")
    assert store.git_commit(tmp_path) == "0123abc"


def test_every_stored_training_record_names_its_cohort():
    """Records trained since #39 name their cohort; older ones have it recovered (or, where
    nobody knows it, an entry that says so) in results/recovered_cohorts.json."""
    directories = [p.parent for p in store.RESULTS.glob("*/*/seed-*/manifest.json")]
    assert directories
    for directory in directories:
        cohort = store.load_record(directory).provenance.get("cohort")
        assert cohort is not None, directory
        if cohort["members"] is not None:
            here = {"task": directory.parts[-3], "config_hash": directory.parts[-2],
                    "seed": int(directory.name.removeprefix("seed-"))}
            assert here in cohort["members"], directory
            runs = [(m["config_hash"], m["seed"]) for m in cohort["members"]]
            assert cohort["id"] == hashlib.sha256(json.dumps(
                [[h, s] for h, s in runs]).encode()).hexdigest()[:12]


def test_a_recovered_cohort_is_read_only_where_the_record_does_not_name_one(tmp_path):
    record = train.train_wm(SMOKE, 4, root=tmp_path, progress=False)
    key = "/".join(record.path.parts[-3:])
    entry = {"id": None, "members": None, "recovered": "unknown: a test"}
    (tmp_path / store.RECOVERED_COHORTS).write_text(json.dumps({"records": {key: entry}}))
    assert store.load_record(record.path).provenance["cohort"]["members"][0]["seed"] == 4
    provenance = json.loads((record.path / "provenance.json").read_text())
    del provenance["cohort"]
    (record.path / "provenance.json").write_text(json.dumps(provenance))
    manifest = json.loads((record.path / "manifest.json").read_text())
    manifest["provenance.json"] = hashlib.sha256((record.path / "provenance.json").read_bytes()).hexdigest()
    (record.path / "manifest.json").write_text(json.dumps(manifest))
    assert store.load_record(record.path).provenance["cohort"] == entry
