"""Sweeps through local processes and dask, and the faults they must survive."""
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import assert_close_records

from mifd import runs, store, study, sweep, train
from mifd.cli import main
from mifd.config import profile

SMOKE = profile("smoke", "wm")
# Long enough (≈ 200 × 20 ms) to be killed in the middle, with a checkpoint every 2 epochs.
SLOW = SMOKE.replace(**{"training.epochs": 200})
RUNS = [sweep.Run(SMOKE, 31), sweep.Run(SMOKE.replace(**{"training.lambda_mi": 0.0}), 31)]


def assert_same_records(a: store.RunRecord, b: store.RunRecord) -> None:
    assert a.config == b.config and a.seed == b.seed
    for key, values in a.history.items():
        assert np.array_equal(values, b.history[key]), key
    for name, values in a.snapshots.items():
        assert np.array_equal(values, b.snapshots[name]), name


def load(run, root):
    return store.load_record(store.run_dir(run.config, run.seed, root))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """RUNS swept without interruption by local worker processes."""
    root = tmp_path_factory.mktemp("reference")
    summary = sweep.run_sweep(RUNS, sweep.ProcessPerRun(2), root, progress=False)
    assert summary["status"].tolist() == ["trained", "trained"]
    return root


def test_grid_expands_profiles_lambdas_settings_and_seeds():
    runs = sweep.grid("wm", ["smoke", "book"], [1, 2], [0.1, 0.0],
                      {"training.epochs": [3, 4]})
    assert len(runs) == 2 * 2 * 2 * 2
    assert {(r.config.training.lambda_mi, r.config.training.epochs, r.seed) for r in runs[:8]} \
        == {(lam, e, s) for lam in (0.1, 0.0) for e in (3, 4) for s in (1, 2)}
    with pytest.raises(ValueError, match="TrainingConfig.epochs"):
        sweep.grid("wm", ["smoke"], [1], settings={"training.epochs": [0]})


def test_process_per_run_isolates_a_dying_worker():
    with sweep.ProcessPerRun(2) as executor:
        dies = executor.submit(os.abort)
        works = executor.submit(math.sqrt, 4.0)
        raises = executor.submit(math.sqrt, -1.0)
        with pytest.raises(sweep.WorkerDied, match="SIGABRT"):
            dies.result()
        assert works.result() == 2.0
        with pytest.raises(sweep.CallFailed, match="ValueError: math domain error"):
            raises.result()


def test_stored_runs_are_skipped(reference):
    summary = sweep.run_sweep(RUNS, root=reference, progress=False, save=False)
    assert summary["status"].tolist() == ["stored", "stored"]


def _wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def _checkpoint_epoch(path) -> int:
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except Exception:  # absent, or being replaced right now
        return -1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


VICTIMS = [sweep.Run(SLOW, 41), sweep.Run(SLOW.replace(**{"training.lambda_mi": 0.0}), 41)]


def test_killed_worker_fails_its_cohort_only_and_a_rerun_resumes_it(tmp_path):
    other = sweep.Run(SMOKE, 42)
    checkpoint = store.cohort_checkpoint([v.config for v in VICTIMS], [41, 41], tmp_path)
    directory = store.run_dir(VICTIMS[0].config, 41, tmp_path)
    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=sweep.run_sweep(
        [*VICTIMS, other], sweep.ProcessPerRun(2), tmp_path, progress=False)))
    thread.start()
    _wait_for(lambda: _checkpoint_epoch(checkpoint) >= 10)
    pid = int(json.loads((directory / sweep.WORKER_FILE).read_text())["pid"])
    os.kill(pid, signal.SIGKILL)
    thread.join()
    summary = result["summary"]
    assert summary["status"].tolist() == ["failed", "failed", "trained"]
    assert "SIGKILL" in summary.loc[0, "reason"]
    assert not store.is_complete(directory)
    killed_at = _checkpoint_epoch(checkpoint)

    again = sweep.run_sweep([*VICTIMS, other], sweep.ProcessPerRun(2), tmp_path, progress=False)
    assert again["status"].tolist() == ["trained", "trained", "stored"]
    fresh = tmp_path / "fresh"
    sweep.run_sweep(VICTIMS, sweep.ProcessPerRun(1), fresh, progress=False)
    for victim in VICTIMS:
        resumed = load(victim, tmp_path)
        assert resumed.provenance["sittings"] == [0, killed_at]
        assert_same_records(resumed, load(victim, fresh))
    assert not checkpoint.exists()


def test_sigterm_to_the_sweep_ends_its_workers_and_keeps_their_checkpoints(tmp_path):
    argv = [sys.executable, "-m", "mifd", "sweep", "wm", "--profile", "smoke", "--seeds", "41",
            "--lambda-mi", "0.1", "0", "--set", "training.epochs=200", "--workers", "1",
            "--results", str(tmp_path), "--quiet"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    checkpoint = store.cohort_checkpoint([v.config for v in VICTIMS], [41, 41], tmp_path)
    worker_file = store.run_dir(VICTIMS[0].config, 41, tmp_path) / sweep.WORKER_FILE
    _wait_for(lambda: _checkpoint_epoch(checkpoint) >= 4 and worker_file.exists())
    pid = int(json.loads(worker_file.read_text())["pid"])
    process.send_signal(signal.SIGTERM)  # to the parent only
    assert process.wait(timeout=60) == 130
    _wait_for(lambda: not _alive(pid), timeout=30)
    stopped_at = _checkpoint_epoch(checkpoint)
    assert stopped_at >= 4  # the checkpoint is whole and loadable
    time.sleep(1.0)
    assert _checkpoint_epoch(checkpoint) == stopped_at  # nobody trains on
    assert not any(store.is_complete(store.run_dir(v.config, 41, tmp_path)) for v in VICTIMS)


def test_interrupted_sweep_completes_only_what_is_missing(reference, tmp_path):
    argv = [sys.executable, "-m", "mifd", "sweep", "wm", "--profile", "smoke", "--seeds", "31",
            "--lambda-mi", "0.1", "0", "--workers", "1", "--cohort-size", "1",
            "--results", str(tmp_path), "--quiet"]  # two cohorts of one, one after the other
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    first = store.run_dir(RUNS[0].config, RUNS[0].seed, tmp_path)
    _wait_for(lambda: store.is_complete(first))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not store.is_complete(store.run_dir(RUNS[1].config, RUNS[1].seed, tmp_path))

    finished = subprocess.run(argv, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "1 stored, 1 trained, 0 failed" in finished.stdout
    for run in RUNS:  # trained in cohorts of one here, together in the reference
        assert_close_records(load(run, tmp_path), load(run, reference))


def test_dask_cluster_gives_the_records_of_local_workers(reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        code = main(["sweep", "wm", "--profile", "smoke", "--seeds", "31", "--lambda-mi", "0.1",
                     "0", "--scheduler", cluster.scheduler_address, "--results", str(tmp_path),
                     "--quiet"])
    assert code == 0
    for run in RUNS:
        assert_same_records(load(run, tmp_path), load(run, reference))


def test_unreachable_scheduler_is_a_one_line_error(capsys, tmp_path):
    code = main(["sweep", "wm", "--profile", "smoke", "--seeds", "1", "--scheduler",
                 "tcp://127.0.0.1:9", "--results", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "scheduler" in err
    assert not any(tmp_path.rglob("*.json"))


def test_altered_record_is_refused_naming_the_file(reference, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(reference, root)
    history = store.run_dir(RUNS[0].config, RUNS[0].seed, root) / "history.json"
    history.write_text(history.read_text().replace("0.", "1.", 1))
    summary = sweep.run_sweep(RUNS, root=root, progress=False, save=False)
    assert summary["status"].tolist() == ["failed", "stored"]
    assert "history.json" in summary.loc[0, "reason"]
    with pytest.raises(store.RecordError, match="history.json"):
        study.study({"": RUNS[0].config}, [RUNS[0].seed], root)


def test_diverging_run_stops_with_a_recorded_failure(tmp_path):
    exploding = SMOKE.replace(**{"training.lr": 1e30})
    with pytest.raises(runs.RunFailed, match="loss became inf"):
        train.train_wm(exploding, 1, root=tmp_path, progress=False)
    directory = store.run_dir(exploding, 1, tmp_path)
    assert store.read_failure(directory)["epoch"] == 2 and not store.is_complete(directory)
    with pytest.raises(runs.RunFailed, match="failed earlier"):
        train.train_wm(exploding, 1, root=tmp_path, progress=False)
    summary = sweep.run_sweep([sweep.Run(exploding, 1)], root=tmp_path, progress=False,
                              save=False)
    assert summary.loc[0, "status"] == "failed" and "loss became inf" in summary.loc[0, "reason"]


def test_cohorts_group_runs_by_shared_settings_within_the_size_and_memory_bound():
    runs = sweep.grid("wm", ["smoke"], [1, 2, 3], [0.1, 0.0], {"training.epochs": [3, 4]})
    chunks = sweep.cohorts(runs, size=4)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(runs)))
    for chunk in chunks:
        assert len(chunk) <= 4
        assert len({runs[i].config.cohort_key() for i in chunk}) == 1
    assert len(chunks) == 4  # epochs 3 and 4 never share a cohort: 6 runs each → 4 + 2
    per_run = sweep.cohort_bytes_per_run(profile("book", "wm"))
    assert 100e6 < per_run < 2e9
    assert [len(c) for c in sweep.cohorts(sweep.grid("wm", ["book"], range(20), [0.1, 0.0]),
                                          memory_gb=10 * per_run / 2**30)] == [10] * 4
    separation = sweep.grid("separation", ["smoke"], [1, 2], [0.005, 0.0])
    assert [len(c) for c in sweep.cohorts(separation)] == [4]  # both seeds, both λ


def test_device_is_checked_and_plumbed():
    state = train.init_wm(SMOKE, 0, device="cpu")
    assert {p.device.type for p in state.model.parameters()} == {"cpu"}
    assert state.device.type == "cpu"
    with pytest.raises(ValueError, match="device"):
        runs.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            train.init_wm(SMOKE, 0, device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_cli_refuses_cuda_without_a_gpu(command, capsys, tmp_path):
    seed = ["--seed", "1"] if command == "train" else ["--seeds", "1"]
    code = main([command, "wm", "--profile", "smoke", *seed, "--device", "cuda",
                 "--results", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "CUDA" in err
    assert not any(tmp_path.iterdir())


def test_describe_names_hashes_seeds_and_the_command_that_makes_them(tmp_path):
    base = profile("smoke", "wm").replace(**{"training.epochs": 3})
    records = {label: [train.train_wm(base.replace(**{"training.lambda_mi": lam}), seed, root=tmp_path,
                                progress=False) for seed in (1, 2, 4)]
               for label, lam in (("MI", 0.1), ("control", 0.0))}
    text = sweep.describe(records)
    assert records["MI"][0].config.config_hash() in text and records["control"][0].config.config_hash() in text
    assert "seeds 1-2, 4" in text and "profile `smoke+custom`" in text
    assert sweep.command(records) == (
        "mifd sweep wm --profile smoke --seeds 1-2 4 --lambda-mi 0.1 0 --set training.epochs=3")
    sparse = {"L1": [SimpleNamespace(config=base.replace(**{"training.c_l1": c}), seed=1)
                     for c in (1e-3, 0.0)]}
    assert sweep.command(sparse).endswith("--set training.epochs=3 --set training.c_l1=0,0.001")


def test_describe_names_the_profile_a_record_now_equals_not_its_stored_name():
    # a run trained with --set before its settings became the profile's keeps "book+custom"
    book = profile("book", "separation")
    stored = dataclasses.replace(book.replace(**{"training.lambda_mi": 0.0}), profile="book+custom")
    assert "profile `book`" in sweep.describe({"control": [SimpleNamespace(config=stored, seed=625)]})
    changed = stored.replace(**{"training.epochs": 7})
    text = sweep.describe({"control": [SimpleNamespace(config=changed, seed=625)]})
    assert "profile `book+custom`" in text and text.endswith("--set training.epochs=7`.")


def test_the_sweep_bar_shows_how_far_its_cohorts_have_trained(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "PROGRESS_SECONDS", 0.2)
    config = SMOKE.replace(**{"training.epochs": 80})
    summary = sweep.run_sweep([sweep.Run(config, 7)], root=tmp_path, workers=1, save=False)
    assert summary["status"].tolist() == ["trained"]
    shown = [int(e) for e in re.findall(r"epoch (\d+)/80", capsys.readouterr().err)]
    assert shown and shown == sorted(shown) and 0 < shown[0] < 80
    assert not (store.run_dir(config, 7, tmp_path) / sweep.WORKER_FILE).exists()


def test_training_progress_reads_one_note_per_worker(tmp_path):
    notes = {"a": {"host": "h", "pid": 1, "epoch": 40, "epochs": 1000},
             "b": {"host": "h", "pid": 1, "epoch": 40, "epochs": 1000},   # the same cohort
             "c": {"host": "h", "pid": 2, "epoch": 7, "epochs": 1000},
             "d": {"host": "h", "pid": 3, "epoch": None, "epochs": 1000}}  # not started
    for name, note in notes.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / sweep.WORKER_FILE).write_text(json.dumps(note))
    (tmp_path / "e").mkdir()  # no note: a run waiting for its cohort
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / sweep.WORKER_FILE).write_text("{")  # half-written
    text = sweep.training_progress(tmp_path / n for n in "abcdef")
    assert text == "epoch 7/1000, epoch 40/1000"
    assert sweep.training_progress([tmp_path / "d"]) == ""


def test_worker_threads_share_the_cores_and_respect_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert sweep.worker_threads(1, cores=2) == 2
    assert sweep.worker_threads(2, cores=2) == 1
    assert sweep.worker_threads(4, cores=2) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a second sweep beside this one
    assert sweep.worker_threads(1, cores=2) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # never more than the cores
    assert sweep.worker_threads(1, cores=2) == 2
