"""Many runs of many configurations: look them up in the store, train the missing ones.

`collect` is what the chapters use: the records of one configuration for a list of seeds.
`run_sweep` is what `mifd sweep` uses: a grid of runs (`grid`), the stored ones skipped,
the rest submitted to any `concurrent.futures.Executor` — `ProcessPerRun` here (one fresh
process per run, so a worker that dies fails only its own run) or a dask.distributed
cluster (`dask_executor`). Every run resumes from its checkpoint, so re-running a sweep
after any interruption completes exactly what is missing.
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import json
import multiprocessing
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd
from tqdm import tqdm

from . import store
from .config import RunConfig, profile
from .runs import RunFailed
from .separation import train_separation
from .train import train_wm

TRAINERS = {"wm": train_wm, "separation": train_separation}


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
            f"{missing}; set train_missing = True, or run `mifd sweep {config.task_name} "
            f"--profile {config.profile.split('+')[0]} --seeds ...`")
    records = []
    for seed in seeds:
        if seed in missing:
            print(f"training {config.task_name} seed {seed} (λ = {config.training.lambda_mi:g}): "
                  "no stored record", flush=True)
            records.append(TRAINERS[config.task_name](config, seed, root=root,
                                                      progress=progress))
        else:
            records.append(store.load_record(store.run_dir(config, seed, root)))
    return records


def conditions(task: str, profile_name: str, lambda_mi: float, epochs: int | None = None
               ) -> dict[str, RunConfig]:
    """The two conditions a chapter compares: {label: config} for λ and the λ = 0 control,
    at `profile_name` with `epochs` overriding the profile's when given."""
    base = profile(profile_name, task)
    if epochs is not None:
        base = base.replace(**{"training.epochs": epochs})
    return {
        f"λ = {lambda_mi:g}": base.replace(**{"training.lambda_mi": lambda_mi}),
        "λ = 0 (control)": base.replace(**{"training.lambda_mi": 0.0}),
    }


# --- a grid of runs ------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One training run: a configuration and a seed."""

    config: RunConfig
    seed: int

    @property
    def label(self) -> str:
        return (f"{self.config.task_name} {self.config.profile} "
                f"λ={self.config.training.lambda_mi:g} seed {self.seed}")


def grid(task: str, profiles: Iterable[str], seeds: Iterable[int],
         lambdas: Iterable[float | None] = (None,),
         settings: dict[str, list[Any]] | None = None) -> list[Run]:
    """Every combination of profile × λ × each setting's values × seed, in that order.

    lambdas: None keeps the profile's λ; settings: {"section.field": [values]}, any
    configuration field. Invalid values raise ValueError naming the field, before any run.
    """
    settings = settings or {}
    names = list(settings)
    runs = []
    for name in profiles:
        base = profile(name, task)
        for lam, values in itertools.product(lambdas, itertools.product(*settings.values())):
            changes = dict(zip(names, values))
            if lam is not None:
                changes["training.lambda_mi"] = lam
            config = base.replace(**changes)
            runs.extend(Run(config, seed) for seed in seeds)
    return runs


# --- one run, in whatever process executes it ------------------------------------------------

WORKER_FILE = "worker.json"


def run_one(config_json: str, seed: int, root: str | None = None, device: str = "cpu",
            threads: int = 1) -> dict[str, Any]:
    """Train or resume one run and return its summary row; executed in a worker process.

    Uses `threads` torch threads (one per worker keeps threads × processes within the
    cores). While it runs, `worker.json` in the run directory names the host and process.
    A diverging run returns status "failed" with the recorded reason; other errors raise.
    """
    import torch

    torch.set_num_threads(threads)
    config = RunConfig.from_json(config_json)
    root = None if root is None else Path(root)
    directory = store.run_dir(config, seed, root)
    store.atomic_write_bytes(directory / WORKER_FILE, json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}).encode())
    try:
        record = TRAINERS[config.task_name](config, seed, root=root, progress=False,
                                            device=device)
    except RunFailed as error:
        return {"status": "failed", "reason": str(error)}
    finally:
        (directory / WORKER_FILE).unlink(missing_ok=True)
    return {"status": "trained", **final_summary(record)}


def final_summary(record: store.RunRecord) -> dict[str, float]:
    """The numbers a sweep's summary shows for a run: its final task score ("accuracy" for
    working memory, mean test "r2" for separation), final Î and training seconds."""
    h = record.history
    if record.config.task_name == "wm":
        score = {"accuracy": float(h["accuracy"][-1]), "mi": float(h["mi_before"][-1])}
    else:
        score = {"r2": float(h["r2_mean"][-1]), "mi": float(h["mi"][-1])}
    return {**score, "seconds": float(record.provenance["train_seconds"])}


# --- executors ---------------------------------------------------------------------------------

class WorkerDied(RuntimeError):
    """The process running a call ended without returning (killed, out of memory, …)."""


class CallFailed(RuntimeError):
    """The call raised in its worker process; the message names the original exception."""


def _call_in_child(connection, fn, args, kwargs) -> None:
    try:
        outcome = ("result", fn(*args, **kwargs))
    except BaseException as error:  # reported to the parent, which decides
        outcome = ("error", f"{type(error).__name__}: {error}")
    connection.send(outcome)
    connection.close()


class ProcessPerRun(cf.Executor):
    """A `concurrent.futures` executor running each call in its own fresh process.

    At most `max_workers` processes at once (default: the machine's cores). Unlike
    `ProcessPoolExecutor`, whose whole pool breaks when one worker is killed, a process that
    dies here fails only its own future (with WorkerDied) and the other calls go on.
    Processes are started with "spawn", so no thread or OpenMP state is inherited.
    """

    def __init__(self, max_workers: int | None = None):
        self._slots = threading.Semaphore(max_workers or os.cpu_count() or 1)
        self._context = multiprocessing.get_context("spawn")
        self._threads: list[threading.Thread] = []
        self._processes: set = set()
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        if self._shutdown:
            raise RuntimeError("cannot submit to an executor that was shut down")
        future: cf.Future = cf.Future()
        thread = threading.Thread(target=self._run, args=(future, fn, args, kwargs), daemon=True)
        self._threads.append(thread)
        thread.start()
        return future

    def _run(self, future: cf.Future, fn, args, kwargs) -> None:
        with self._slots:
            if self._shutdown or not future.set_running_or_notify_cancel():
                return
            receiver, sender = self._context.Pipe(duplex=False)
            process = self._context.Process(target=_call_in_child,
                                            args=(sender, fn, args, kwargs), daemon=True)
            with self._lock:
                process.start()
                self._processes.add(process)
            sender.close()
            try:
                kind, value = receiver.recv()
            except EOFError:
                kind, value = "died", None
            process.join()
            with self._lock:
                self._processes.discard(process)
        if kind == "result":
            future.set_result(value)
        elif kind == "error":
            future.set_exception(CallFailed(value))
        else:
            code = process.exitcode
            how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
                   else f"exit code {code}")
            future.set_exception(WorkerDied(f"worker process {process.pid} died ({how})"))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting calls; with `cancel_futures`, also terminate running processes."""
        self._shutdown = True
        if cancel_futures:
            with self._lock:
                for process in self._processes:
                    process.terminate()
        if wait:
            for thread in self._threads:
                thread.join()


@contextmanager
def dask_executor(address: str) -> Iterator[cf.Executor]:
    """A `concurrent.futures` executor submitting to the dask.distributed scheduler at
    `address` (e.g. "tcp://10.0.0.5:8786"). Workers need mifd installed and the results
    directory on a shared file system. Needs the `distributed` extra."""
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--scheduler needs dask.distributed: pip install 'mifd[distributed]'"
                         ) from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise ValueError(f"--scheduler: cannot reach a dask scheduler at {address!r} ({error})"
                         ) from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()


# --- the sweep -------------------------------------------------------------------------------

def _stored_status(run: Run, root: Path | None) -> dict[str, Any] | None:
    """The row of a run that needs no training (stored, or refused), else None."""
    directory = store.run_dir(run.config, run.seed, root)
    if store.is_complete(directory):
        try:
            record = store.load_record(directory)
        except store.RecordError as error:
            return {"status": "failed", "reason": f"corrupt record: {error}"}
        return {"status": "stored", **final_summary(record)}
    failure = store.read_failure(directory)
    if failure is not None:
        return {"status": "failed",
                "reason": f"recorded failure: {failure['reason']} (delete {directory} to retry)"}
    return None


def run_sweep(runs: list[Run], executor: cf.Executor | None = None, root: Path | None = None,
              device: str = "cpu", progress: bool = True, save: bool = True) -> pd.DataFrame:
    """Train every run without a complete record, through `executor`, and summarise.

    executor: any `concurrent.futures.Executor` (default: ProcessPerRun with one process
    per core). Returns one row per run, in the order given: task, profile, config hash, λ,
    seed, status (stored / trained / failed), reason, final accuracy (working memory) or mean
    test R² (separation), final Î, seconds, path.
    The summary is also written to <results>/sweeps/ when `save`.
    """
    rows: dict[int, dict[str, Any]] = {}
    todo = []
    for i, run in enumerate(runs):
        row = _stored_status(run, root)
        if row is None:
            todo.append(i)
        else:
            rows[i] = row
    own = executor is None and bool(todo)
    if own:
        executor = ProcessPerRun()
    bar = tqdm(total=len(runs), initial=len(rows), disable=not progress, unit="run",
               desc="sweep")
    failed = sum(row["status"] == "failed" for row in rows.values())
    try:
        futures = {executor.submit(run_one, runs[i].config.to_json(), runs[i].seed,
                                   None if root is None else str(root), device): i
                   for i in todo}
        for future in cf.as_completed(futures):
            i = futures[future]
            try:
                rows[i] = future.result()
            except Exception as error:
                rows[i] = {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
            failed += rows[i]["status"] == "failed"
            bar.update()
            bar.set_postfix(failed=failed, remaining=len(runs) - bar.n)
    finally:
        bar.close()
        if own:
            executor.shutdown(cancel_futures=True)
    summary = pd.DataFrame([
        {"task": run.config.task_name, "profile": run.config.profile,
         "config_hash": run.config.config_hash(), "lambda_mi": run.config.training.lambda_mi,
         "seed": run.seed, "status": rows[i]["status"], "reason": rows[i].get("reason", ""),
         "accuracy": rows[i].get("accuracy"), "r2": rows[i].get("r2"), "mi": rows[i].get("mi"),
         "seconds": rows[i].get("seconds"),
         "path": str(store.run_dir(run.config, run.seed, root))}
        for i, run in enumerate(runs)])
    if save:
        name = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}.csv"
        store.atomic_write_bytes((store.RESULTS if root is None else Path(root)) / "sweeps" / name,
                                 summary.to_csv(index=False).encode())
    return summary
