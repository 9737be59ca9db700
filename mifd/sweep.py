"""Many runs of one configuration: look them up in the store, train the missing ones."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from . import store
from .config import RunConfig, profile
from .train import train_wm


class MissingRunsError(LookupError):
    """Some requested runs have no complete record and training was not asked for."""


def collect(config: RunConfig, seeds: Iterable[int], root: Path | None = None,
            train_missing: bool = False, progress: bool = True) -> list[store.RunRecord]:
    """The records of `config` for every seed, in seed order.

    Missing records are trained (resuming any checkpoint) when `train_missing`; otherwise a
    MissingRunsError names them and the command that makes them.
    """
    seeds = list(seeds)
    missing = [s for s in seeds if not store.is_complete(store.run_dir(config, s, root))]
    if missing and not train_missing:
        raise MissingRunsError(
            f"no stored {config.task_name} runs of profile {config.profile!r} "
            f"(hash {config.config_hash()}, λ = {config.training.lambda_mi:g}) for seeds "
            f"{missing}; set train_missing = True, or run `mifd train {config.task_name} "
            f"--seed N ...` for each")
    records = []
    for seed in seeds:
        if seed in missing:
            print(f"training {config.task_name} seed {seed} (λ = {config.training.lambda_mi:g}): "
                  "no stored record", flush=True)
            records.append(train_wm(config, seed, root=root, progress=progress))
        else:
            records.append(store.load_record(store.run_dir(config, seed, root)))
    return records


def wm_conditions(profile_name: str, lambda_mi: float, epochs: int | None = None
                  ) -> dict[str, RunConfig]:
    """The two working-memory conditions a chapter compares: {label: config} for λ and the
    λ = 0 control, at `profile_name` with `epochs` overriding the profile's when given."""
    base = profile(profile_name, "wm")
    if epochs is not None:
        base = base.replace(**{"training.epochs": epochs})
    return {
        f"λ = {lambda_mi:g}": base.replace(**{"training.lambda_mi": lambda_mi}),
        "λ = 0 (control)": base.replace(**{"training.lambda_mi": 0.0}),
    }
