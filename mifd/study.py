"""The runs of a study: which of a grid's records are stored, which are missing (and the
command that trains them), which diverged, and training the missing ones when asked. Every
chapter and `evidence` gets its records here."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import store, sweep
from .config import RunConfig


class MissingRunsError(LookupError):
    """Some requested runs have no complete record and training was not asked for."""


@dataclass(frozen=True)
class Study:
    """What is stored of a grid of configurations × seeds.

    records: {label: [RunRecord, …]} the complete records, in seed order ([] for a label
    with none); command: the `mifd sweep` command of the runs still missing ("" when none
    is; it skips the stored and failed ones); failures: "label, seed N: reason" for each run
    that diverged (its failure is recorded instead of a record and the sweep does not retry
    it, so it is neither stored nor missing); requested: how many runs the grid has."""

    records: dict[str, list[store.RunRecord]]
    command: str
    failures: list[str]
    requested: int

    @property
    def stored(self) -> dict[str, list[store.RunRecord]]:
        """The labels with at least one record."""
        return {label: runs for label, runs in self.records.items() if runs}

    def report(self) -> str:
        """How many runs are stored, each that diverged, and the command for the others."""
        return (f"{sum(map(len, self.records.values()))} of {self.requested} runs stored."
                + "".join(f"\nDiverged (its failure is recorded; the sweep does not retry it): {f}"
                          for f in self.failures)
                + (f"\nThe others are trained by\n{self.command}" if self.command else ""))

    def complete(self) -> dict[str, list[store.RunRecord]]:
        """Every label's records, or MissingRunsError naming what is not stored."""
        if self.command or self.failures:
            raise MissingRunsError(
                "not every requested run is stored"
                + (f"; train the missing ones with `{self.command}` (or set train_missing = True)"
                   if self.command else "")
                + "".join(f"; diverged: {f}" for f in self.failures))
        return self.records


def study(configs: dict[str, RunConfig], seeds: Iterable[int], root: Path | None = None,
          train_missing: bool = False, progress: bool = False) -> Study:
    """The stored records of every configuration ({label: config}) for `seeds`; with
    `train_missing`, the missing runs are trained first (as cohorts, in this process,
    resuming any checkpoint). The configurations of one study should differ only in per-run
    settings (λ, c_L1), as one `mifd sweep` command trains them."""
    seeds = list(seeds)
    wanted = {label: [sweep.Run(config, seed) for seed in seeds] for label, config in configs.items()}
    missing = _missing(wanted, root)
    if missing and train_missing:
        names = ", ".join(f"λ = {run.config.training.lambda_mi:g} seed {run.seed}"
                          for run in missing)
        print(f"training {missing[0].config.task_name} runs without a stored record: {names}",
              flush=True)
        sweep.train_here(missing, root, progress)
        missing = _missing(wanted, root)
    records: dict[str, list[store.RunRecord]] = {label: [] for label in wanted}
    failures = []
    for label, runs in wanted.items():
        for run in runs:
            directory = store.run_dir(run.config, run.seed, root)
            if store.is_complete(directory):
                records[label].append(store.load_record(directory))
            elif (failure := store.read_failure(directory)) is not None:
                failures.append(f"{label}, seed {run.seed}: {failure['reason']}")
    return Study(records, sweep.command(wanted) if missing else "", failures,
                 len(configs) * len(seeds))


def _missing(wanted: dict[str, list[sweep.Run]], root: Path | None) -> list[sweep.Run]:
    """The runs of `wanted` with neither a complete record nor a recorded failure."""
    return [run for runs in wanted.values() for run in runs
            if not store.is_complete(directory := store.run_dir(run.config, run.seed, root))
            and store.read_failure(directory) is None]


def stored(config: RunConfig, seeds: Iterable[int], root: Path | None = None,
           train_missing: bool = False) -> list[store.RunRecord]:
    """The stored records of one configuration for `seeds`, in seed order (the missing ones
    trained first with `train_missing`)."""
    return study({"": config}, seeds, root, train_missing).records[""]
