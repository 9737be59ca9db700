"""The cost page's measurements: stored runs' machine time, chapter times, benchmark tables."""
import json
import time

import pytest

from mifd import costs, machine, train
from mifd.config import profile


def test_stored_runs_count_each_runs_share_of_its_cohort_once(tmp_path):
    config = profile("smoke", "wm")
    started, cpu_started = time.perf_counter(), time.process_time()
    records = train.train_wm_cohort([config, config.replace(**{"training.lambda_mi": 0.0})],
                                    [4, 4], root=tmp_path, progress=False)
    wall, cpu_used = time.perf_counter() - started, time.process_time() - cpu_started
    record = records[0]
    provenance = record.path / "provenance.json"
    runs = costs.stored_runs(tmp_path)
    assert len(runs) == 2 and set(runs["seed"]) == {4} and set(runs["task"]) == {"wm"}
    p = json.loads(provenance.read_text())
    assert p["cohort_runs"] == 2
    # train_seconds is already the run's share: the two shares add up to the cohort's time
    assert runs["train seconds"].sum() <= wall
    # core-hours: the run's share of the process's CPU time, which the shares cannot exceed
    assert 0 < p["train_cpu_seconds"] and 2 * p["train_cpu_seconds"] <= cpu_used
    assert runs.loc[0, "core-hours"] == pytest.approx(p["train_cpu_seconds"] / 3600)
    wall_only = {k: v for k, v in p.items() if k != "train_cpu_seconds"}  # an older record
    assert costs.core_hours(wall_only) == pytest.approx(p["train_seconds"] * p["torch_threads"] / 3600)
    cpu = machine.cpu()
    assert runs.loc[0, "cpu"] == f"{cpu['model_name']} {cpu['family_model_stepping']}".strip()
    summary = costs.profile_costs(runs)
    assert summary["runs"].sum() == 2 and set(summary["epochs"]) == {config.training.epochs}
    assert costs.retraining(runs, [runs.loc[0, "config hash"]], 3) == pytest.approx(3 * runs.loc[0, "core-hours"])
    (record.path / "manifest.json").unlink()          # incomplete: not counted
    assert len(costs.stored_runs(tmp_path)) == 1


def test_chapter_times_read_papermills_metadata(tmp_path):
    meta = {"papermill": {"duration": 12.5, "end_time": "2026-12-03T13:38:15.18+00:00"}}
    (tmp_path / "01_x.ipynb").write_text(json.dumps({"cells": [], "metadata": meta}))
    (tmp_path / "02_y.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))  # never executed
    table = costs.chapter_times(tmp_path)
    assert table.to_dict("records") == [{"page": "01_x", "executed (UTC)": "2026-12-03 13:38", "seconds": 12.5}]
    assert costs.chapter_times(tmp_path / "missing").empty


def test_benchmark_tables_are_read_per_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# B\n\n## `a.py` — one\n\ntext\n\nRun on a 2-core\nmachine, idle:\n\n| x | y |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n"
                      "## `b.py` — two\n| k |\n|---|\n| v |\n")
    tables = costs.benchmark_tables(readme)
    assert list(tables) == ["`a.py` — one", "`b.py` — two"]
    assert tables["`a.py` — one"][0].to_dict("list") == {"x": ["1", "3"], "y": ["2", "4"]}
    assert costs.benchmark_machine(readme, "`a.py` — one") == "Run on a 2-core machine, idle"
    assert costs.benchmark_machine(readme, "`b.py` — two") == ""


def test_benchmark_value_reads_one_cell_of_a_scripts_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## `bench_x.py` — one thing\n\nRun on a machine:\n\n"
                      "| piece | book | paper |\n|---|---|---|\n| **one update** | **1.5 s** | **91 s** |\n")
    assert costs.benchmark_value(readme, "bench_x.py", "one update", "paper") == "91 s"
    with pytest.raises(KeyError):
        costs.benchmark_value(readme, "bench_y.py", "one update", "paper")
