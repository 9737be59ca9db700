"""What the book costs, from measurements only: how long the last build took to execute each
chapter (papermill's own timing in the staged notebooks), the machine time behind every
stored run (its provenance), and the speeds the benchmarks measured (their committed tables).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from . import machine, store


def chapter_times(staged: Path) -> pd.DataFrame:
    """One row per executed notebook in `staged` (the build's `_build/staging/notebooks/`):
    "page" (file stem), "executed (UTC)" and "seconds", from papermill's metadata; empty when
    nothing has been built."""
    rows = []
    for path in sorted(Path(staged).glob("*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is not None:
            rows.append({"page": path.stem, "executed (UTC)": str(meta.get("end_time", ""))[:16].replace("T", " "),
                         "seconds": float(meta["duration"])})
    return pd.DataFrame(rows, columns=["page", "executed (UTC)", "seconds"])


def core_hours(provenance: dict) -> float:
    """The core-hours a record's run took: its share of its process's CPU time
    (`train_cpu_seconds`, `runs.Member.cpu_seconds`) where the record has it, else its
    training seconds (its share of its cohort's wall-clock time, `runs.Member.seconds`) × its
    torch threads, which also counts time the process was paused or waited for a core."""
    if "train_cpu_seconds" in provenance:
        return float(provenance["train_cpu_seconds"]) / 3600
    return float(provenance["train_seconds"]) * int(provenance.get("torch_threads", 1)) / 3600


def stored_runs(root: Path | None = None) -> pd.DataFrame:
    """One row per complete record under `root` (default: the repository's results/): task,
    profile, config hash, seed, λ, epochs, the run's training seconds (its share of its
    cohort's wall-clock time), torch threads, runs in its cohort, and `core_hours`."""
    root = Path(root) if root is not None else store.RESULTS
    rows = []
    for provenance in sorted(root.glob("*/*/seed-*/provenance.json")):
        directory = provenance.parent
        if not store.is_complete(directory):
            continue
        meta = json.loads((directory / "config.json").read_text())
        prov = json.loads(provenance.read_text())
        config, cohort = meta["config"], int(prov.get("cohort_runs", 1))
        threads = int(prov.get("torch_threads", 1))
        rows.append({
            "task": config["task_name"], "profile": config["profile"],
            "config hash": meta["config_hash"], "seed": int(meta["seed"]),
            "lambda": config["training"]["lambda_mi"], "epochs": config["training"]["epochs"],
            "train seconds": float(prov["train_seconds"]), "threads": threads, "cohort runs": cohort,
            "core-hours": core_hours(prov),
            "commit": str(prov.get("git_commit", ""))[:7],
            "cpu": machine.recorded_cpu(prov),
        })
    return pd.DataFrame(rows)


def profile_costs(runs: pd.DataFrame) -> pd.DataFrame:
    """`stored_runs` summed per task, profile and configuration: runs, epochs, core-hours in
    all, core-minutes per run and core-seconds per run-epoch (means over the runs)."""
    grouped = runs.assign(per_epoch=runs["core-hours"] * 3600 / runs["epochs"]).groupby(
        ["task", "profile", "config hash"], sort=True)
    return grouped.agg(runs=("seed", "size"), epochs=("epochs", "first"),
                       core_hours=("core-hours", "sum"),
                       core_minutes_per_run=("core-hours", lambda h: 60 * h.mean()),
                       core_seconds_per_run_epoch=("per_epoch", "mean")).reset_index()


def retraining(runs: pd.DataFrame, hashes: list[str], n_runs: int) -> float:
    """Core-hours to retrain `n_runs` runs of the configurations `hashes`, at the mean measured
    cost per run of those configurations' stored runs (NaN when none is stored)."""
    return float(runs.loc[runs["config hash"].isin(hashes), "core-hours"].mean() * n_runs)


def benchmark_tables(readme: Path) -> dict[str, list[pd.DataFrame]]:
    """The tables of a benchmarks README, per section: {section title: [table, …]}, each
    Markdown table read as strings without its Markdown emphasis (the scripts print them; the
    README keeps their output)."""
    tables: dict[str, list[pd.DataFrame]] = {}
    section = ""              # the current section's heading
    block: list[str] = []     # the table lines read under it

    def flush():
        if len(block) >= 3:
            cells = [[c.strip().replace("**", "").replace("`", "") for c in line.strip().strip("|").split("|")]
                     for line in block]
            tables.setdefault(section, []).append(pd.DataFrame(cells[2:], columns=cells[0]))
        block.clear()

    for line in Path(readme).read_text().splitlines():
        if line.startswith("## "):
            flush()
            section = line[3:].strip()
        elif re.match(r"^\s*\|", line):
            block.append(line)
        else:
            flush()
    flush()
    return tables


def benchmark_value(readme: Path, script: str, row: str, column: str) -> str:
    """One cell of a benchmarks README: in the section of `script` (its title starts with the
    script's name in backticks), the first table row whose first cell is `row`, column
    `column` (as written, e.g. "90.9 s"); KeyError when there is none."""
    for section, tables in benchmark_tables(readme).items():
        if section.startswith(f"`{script}`"):
            for table in tables:
                if column in table.columns:
                    hits = table.loc[table.iloc[:, 0] == row, column]
                    if len(hits):
                        return str(hits.iloc[0])
    raise KeyError(f"{readme}: no {row!r} / {column!r} in the section of {script}")


def benchmark_machine(readme: Path, section: str) -> str:
    """The paragraph of a benchmarks README section that says where its tables were measured
    (it starts "Run on" or "Same machine"), as one line; "" when the section has none."""
    lines = Path(readme).read_text().splitlines()
    start = next((k for k, line in enumerate(lines) if line.startswith("## ") and line[3:].strip() == section), None)
    if start is None:
        return ""
    paragraph: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if paragraph and not line.strip():
            break
        if paragraph or line.startswith(("Run on", "Same machine")):
            paragraph.append(line.strip())
    return " ".join(paragraph).rstrip(":")


def plan_table(plans: dict[str, tuple[dict, list]], runs: pd.DataFrame) -> pd.DataFrame:
    """Per part of the book ({name: ({label: RunConfig}, seeds)}): the runs it needs, how many
    of them are stored (`runs`: `stored_runs`) and the core-hours to train them all anew
    (`retraining`)."""
    rows = []
    for name, (configs, seeds) in plans.items():
        hashes = [c.config_hash() for c in configs.values()]
        n = len(hashes) * len(seeds)
        rows.append({"chapter": name, "runs": n,
                     "stored": int((runs["config hash"].isin(hashes) & runs["seed"].isin(seeds)).sum()),
                     "core-hours from scratch": retraining(runs, hashes, n)})
    return pd.DataFrame(rows)
