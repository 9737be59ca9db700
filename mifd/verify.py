"""Does a stored record regenerate here? Re-train its first epochs and compare.

A run's numbers depend on four circumstances besides its configuration and seed: the
processor (torch and MKL pick kernels by vector width, and so summation orders), the torch
thread count, the code's commit, and the *cohort* it trained in (a cohort's batched
products sum in another order than a lone run's, and the critic's RMSprop turns that
rounding into a different trajectory within a few epochs: same distribution, not the same
run). `verify` re-trains the first N epochs of the record's cohort — every member, in its
run-axis order, as its provenance names them — or, with `alone`, the record by itself,
with this checkout's code, and reports what it measured: bit-identical, or the largest
relative difference of each per-epoch history value, with which of the four circumstances
differ from the record's. It never states an agreement it did not measure.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import machine, store
from .config import RunConfig


def compare_histories(stored: dict[str, np.ndarray], fresh: dict[str, np.ndarray],
                      epochs: int) -> dict[str, Any]:
    """Largest relative difference |a − b| / max(|a|, |b|) over the first `epochs` entries
    of every history entry both have: "per_key" {key: difference} for the keys that differ,
    the worst ("largest_relative_difference", "in"), the first differing epoch (1-based)
    and "identical" when every value agrees bit for bit."""
    per_key: dict[str, float] = {}
    first_epoch = None
    for key in sorted(set(stored) & set(fresh)):
        a = np.asarray(stored[key], float)[:epochs]
        b = np.asarray(fresh[key], float)[:epochs]
        differs = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if differs.any():
            e = int(np.argmax(differs))
            first_epoch = e + 1 if first_epoch is None else min(first_epoch, e + 1)
            scale = np.maximum(np.abs(a), np.abs(b))
            relative = np.where(differs, np.abs(a - b) / np.where(scale > 0, scale, 1), 0.0)
            relative[np.isnan(a) != np.isnan(b)] = np.inf  # a value against no value
            per_key[key] = float(np.nanmax(relative))
    worst = max(per_key, key=per_key.__getitem__, default=None)
    return {"identical": first_epoch is None, "per_key": per_key,
            "largest_relative_difference": 0.0 if worst is None else per_key[worst], "in": worst,
            "first_differing_epoch": first_epoch}



def _finished(outcome) -> store.RunRecord:
    """A re-trained run's record (`runs.Outcome`); RecordError when it diverged."""
    if not isinstance(outcome, store.RunRecord):  # the reason it diverged (never paused here)
        raise store.RecordError(f"re-training diverged: {outcome}")
    return outcome

def member_config(root: Path, member: dict[str, Any]) -> RunConfig:
    """The configuration of a cohort member ({"task", "config_hash", "seed"}) from its record
    (or its recorded failure) under the results folder `root`; RecordError when neither is
    there."""
    directory = Path(root) / member["task"] / member["config_hash"] / f"seed-{member['seed']}"
    if (directory / "config.json").exists():
        return RunConfig.from_dict(json.loads((directory / "config.json").read_text())["config"])
    failure = store.read_failure(directory)
    if failure is not None and "config" in failure:
        return RunConfig.from_dict(failure["config"])
    raise store.RecordError(
        f"{directory}: the record's cohort member is not stored here, so its cohort cannot be "
        "re-trained; use --alone to re-train the record by itself")


def verify(path: Path, epochs: int = 2, alone: bool = False) -> dict[str, Any]:
    """Re-train the first `epochs` epochs of the record at `path` here, in its cohort (or
    `alone`), into a temporary folder, and compare; returns the comparison with the four
    circumstances of the record and of this re-training."""
    from .runs import train_cohort
    from .sweep import LOOPS

    path = Path(path)
    record = store.load_record(path)
    if not 0 < epochs <= record.config.training.epochs:
        raise ValueError(f"--epochs must lie in 1…{record.config.training.epochs} "
                         f"(the record's epochs), got {epochs}")
    cohort = record.provenance.get("cohort")
    here_key = (record.config.config_hash(), record.seed)
    if alone or not cohort or not cohort.get("members"):
        configs, seeds, index = [record.config], [record.seed], 0
        retrained = "alone"
    else:
        root = path.parents[2]
        configs = [member_config(root, m) for m in cohort["members"]]
        seeds = [int(m["seed"]) for m in cohort["members"]]
        index = [(c.config_hash(), s) for c, s in zip(configs, seeds)].index(here_key)
        retrained = "cohort"
    short = [c.replace(**{"training.epochs": epochs}) for c in configs]
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = train_cohort(LOOPS[record.config.task_name], short, seeds, root=Path(tmp),
                                progress=False)
    fresh = _finished(outcomes[index])
    here, made = machine.cpu(), record.provenance.get("cpu")
    threads = torch.get_num_threads()
    made_threads = record.provenance.get("torch_threads")
    record_members = len(cohort["members"]) if cohort and cohort.get("members") else None
    return {
        "epochs": epochs, **compare_histories(record.history, fresh.history, epochs),
        "retrained": retrained, "retrained_runs": len(configs),
        "record_cohort_runs": record_members or int(record.provenance.get("cohort_runs", 1)),
        "cohort_known": bool(record_members), "cohort_note": (cohort or {}).get("recovered"),
        "record_commit": record.provenance.get("git_commit", "unknown"),
        "this_commit": store.git_commit(),
        "record_cpu": made, "this_cpu": here,
        "same_cpu": None if made is None else made == here,
        "record_threads": made_threads, "this_threads": threads,
    }


def differences(result: dict[str, Any]) -> list[str]:
    """Which of the four circumstances (processor, threads, commit, cohort) differ between the
    record and the re-training, in words; an unknown one says so."""
    found = []
    if result["same_cpu"] is None:
        found.append("the record does not name its processor")
    elif not result["same_cpu"]:
        found.append(f"processor: record {describe_cpu(result['record_cpu'])}; "
                     f"here {describe_cpu(result['this_cpu'])}")
    if result["record_threads"] is None:
        found.append("the record does not name its thread count")
    elif result["record_threads"] != result["this_threads"]:
        found.append(f"threads: record {result['record_threads']}, here {result['this_threads']}")
    if result["record_commit"].split("+")[0] != result["this_commit"].split("+")[0]:
        found.append(f"commit: record {result['record_commit'][:12]}, here "
                     f"{result['this_commit'][:12]} (check out the record's commit to "
                     "regenerate it)")
    if not result["cohort_known"]:
        found.append(f"cohort: the record does not name its cohort "
                     f"({result['record_cohort_runs']} run(s)); re-trained alone")
    elif result["retrained"] == "alone" and result["record_cohort_runs"] > 1:
        found.append(f"cohort: the record trained in a cohort of {result['record_cohort_runs']} "
                     "runs; re-trained alone")
    return found


def report(result: dict[str, Any]) -> str:
    """The verification as a few lines for the command line: what was re-trained, what it
    measured (per history key where values differ), and the circumstances that differ."""
    what = ("alone" if result["retrained_runs"] == 1
            else f"in its cohort of {result['retrained_runs']} runs")
    if result["identical"]:
        lines = [f"bit-identical over the first {result['epochs']} epochs (re-trained {what})"]
    else:
        lines = [f"differs from epoch {result['first_differing_epoch']} on (re-trained {what}); "
                 f"largest relative difference per key over the first {result['epochs']} epochs:"]
        lines += [f"  {key}: {value:.3g}" for key, value in
                  sorted(result["per_key"].items(), key=lambda kv: -kv[1])]
    if result.get("cohort_note"):
        lines.append(f"the record's cohort was recovered afterwards: {result['cohort_note']}")
    found = differences(result)
    lines += ([f"differs from the record's circumstances: {d}" for d in found] if found else
              ["processor, threads, commit and cohort are the record's"])
    return "\n".join(lines)


def describe_cpu(cpu: dict[str, Any]) -> str:
    return (f"{machine.cpu_name(cpu)}, "
            f"{' '.join(cpu['vector_extensions']) or 'no AVX'}, torch {cpu['torch_capability']}")


def cohort_departure(configs: list[RunConfig], seeds: list[int], epochs: int,
                     root: Path) -> list[dict[str, Any]]:
    """How far the runs (configs[i], seeds[i]) trained as one cohort depart from the same runs
    trained alone, over their first `epochs` epochs: one row per run and history key, with
    "first_differing_epoch" (1-based, None when identical), the largest relative difference
    over the epochs ("largest") and at the last epoch ("at_end"). Trains into `root`."""
    from .runs import train_cohort
    from .sweep import LOOPS

    short = [c.replace(**{"training.epochs": epochs}) for c in configs]
    loop = LOOPS[short[0].task_name]
    together = train_cohort(loop, short, seeds, root=Path(root) / "cohort", progress=False)
    rows = []
    for i, (config, seed) in enumerate(zip(short, seeds)):
        alone, = train_cohort(loop, [config], [seed], root=Path(root) / f"alone-{i}",
                              progress=False)
        a, b = _finished(together[i]).history, _finished(alone).history
        for key in sorted(set(a) & set(b)):
            found = compare_histories({key: a[key]}, {key: b[key]}, epochs)
            end = compare_histories({key: a[key][-1:]}, {key: b[key][-1:]}, 1)
            rows.append({"lambda_mi": config.training.lambda_mi, "seed": seed, "key": key,
                         "first_differing_epoch": found["first_differing_epoch"],
                         "largest": found["largest_relative_difference"],
                         "at_end": end["largest_relative_difference"]})
    return rows


def departure_summary(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """`cohort_departure` rows summarised per history key: the runs compared, the earliest
    epoch at which a run departs, and the median and largest relative difference at the last
    epoch and over all epochs; sorted by the median at the last epoch, largest first."""
    table = pd.DataFrame(rows)
    return (table.groupby("key")
            .agg(runs=("seed", "size"), first_epoch=("first_differing_epoch", "min"),
                 median_at_end=("at_end", "median"), largest_at_end=("at_end", "max"),
                 largest=("largest", "max"))
            .sort_values("median_at_end", ascending=False).reset_index())


def departure_text(departure: dict[str, Any]) -> str:
    """The methods page's sentence on `results/cohort_departure.json` (`departure`, as
    benchmarks/cohort_departure.py writes it): how far runs trained in their cohort and alone
    depart, with the machine and commit that measured it."""
    rows = departure_summary(departure["rows"]).set_index("key")
    made = departure["provenance"]
    return (f"trained in the cohort of λ = 0.1 and λ = 0 of its seed (as the stored ten-seed runs were) "
            f"and again alone, {rows['runs'].iloc[0]} `{departure['profile']}` runs (seeds "
            f"{', '.join(map(str, departure['seeds']))}, both conditions) depart from epoch "
            f"{int(rows['first_epoch'].min())} on. Over the first {departure['epochs']} epochs the training "
            f"Î of a run in its cohort and alone differ by up to {rows.loc['mi_before', 'largest']:.0%} "
            f"(relative), the accuracy by up to {rows.loc['accuracy', 'largest']:.0%}; at epoch "
            f"{departure['epochs']}, by a median of {rows.loc['mi_before', 'median_at_end']:.1%} and "
            f"{rows.loc['accuracy', 'median_at_end']:.1%} (largest {rows.loc['mi_before', 'largest_at_end']:.0%} "
            f"and {rows.loc['accuracy', 'largest_at_end']:.0%}): two trajectories of one distribution ("
            f"{machine.cpu_name(made['cpu'])}, {made['torch_threads']} torch thread, commit "
            f"{made['git_commit'][:7]}; `benchmarks/cohort_departure.py`, "
            "stored in `results/cohort_departure.json`).")
