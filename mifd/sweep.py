"""Many runs of many configurations: look them up in the store, train the missing ones.

`collect` is what the chapters use: the records of one configuration for a list of seeds.
`run_sweep` is what `mifd sweep` uses: a grid of runs (`grid`) is grouped into cohorts
(`cohorts`: runs that differ only in seed and per-run settings, at most as many as a
memory bound allows), the cohorts whose runs are all stored are skipped, and each of the
others is submitted as one task to any `concurrent.futures.Executor` — `ProcessPerRun`
here (one fresh process per task, so a worker that dies fails only its own cohort) or a
dask.distributed cluster (`dask_executor`). Every cohort resumes from its checkpoint, so
re-running a sweep after any interruption completes exactly what is missing.
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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from . import files, store
from .config import RunConfig, profile
from .runs import train_cohort
from .separation import SEPARATION_LOOP
from .train import WM_LOOP

LOOPS = {"wm": WM_LOOP, "separation": SEPARATION_LOOP}  # each task, registered once
# The memory a cohort may use unless told otherwise (`--memory-gb`); this machine has 24 GiB.
DEFAULT_MEMORY_GB = 12.0


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
        c_l1 = self.config.training.c_l1
        return (f"{self.config.task_name} {self.config.profile} "
                f"λ={self.config.training.lambda_mi:g}{f' c_L1={c_l1:g}' if c_l1 else ''} "
                f"seed {self.seed}")


def grid(task: str, profiles: Iterable[str], seeds: Iterable[int],
         lambdas: Iterable[float | None] = (None,),
         settings: dict[str, list[Any]] | None = None) -> list[Run]:
    """Every combination of profile × λ × each setting's values × seed, in that order.

    lambdas: None keeps the profile's λ; settings: {"section.field": [values]}, any
    configuration field. Invalid values raise ValueError naming the field, before any run.
    """
    settings = settings or {}
    names = list(settings)
    runs: list[Run] = []
    for name in profiles:
        base = profile(name, task)
        for lam, values in itertools.product(lambdas, itertools.product(*settings.values())):
            changes = dict(zip(names, values))
            if lam is not None:
                changes["training.lambda_mi"] = lam
            config = base.replace(**changes)
            runs.extend(Run(config, seed) for seed in seeds)
    return runs


# --- cohorts ---------------------------------------------------------------------------------

def cohort_bytes_per_run(config: RunConfig) -> int:
    """An upper estimate of the memory one run adds to a cohort, in bytes (its task's
    `Loop.bytes_per_run`)."""
    return LOOPS[config.task_name].bytes_per_run(config)


def cohorts(runs: list[Run], size: int | None = None,
            memory_gb: float = DEFAULT_MEMORY_GB) -> list[list[int]]:
    """Group runs (by index) into cohorts: runs of one task whose settings differ only in
    the per-run fields, in grid order, at most `size` runs each (default: as many as fit in
    `memory_gb` by `cohort_bytes_per_run`)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault((run.config.task_name, run.config.cohort_key()), []).append(i)
    chunks: list[list[int]] = []
    for members in groups.values():
        limit = size or max(1, int(memory_gb * 2**30 // cohort_bytes_per_run(
            runs[members[0]].config)))
        chunks.extend(members[start:start + limit] for start in range(0, len(members), limit))
    return chunks


def train_here(runs: list[Run], root: Path | None = None, progress: bool = True,
               device: str = "cpu") -> list:
    """Train `runs` in this process, cohort by cohort (`cohorts`); one outcome per run as
    `runs.train_cohort` gives them, in the order given."""
    outcomes: list = [None] * len(runs)
    for chunk in cohorts(runs):
        task = runs[chunk[0]].config.task_name
        results = train_cohort(LOOPS[task], [runs[i].config for i in chunk],
                               [runs[i].seed for i in chunk], root, progress, device=device)
        for i, outcome in zip(chunk, results):
            outcomes[i] = outcome
    return outcomes


# --- one cohort, in whatever process executes it -------------------------------------------

WORKER_FILE = "worker.json"


def run_cohort(config_jsons: list[str], seeds: list[int], root: str | None = None,
               device: str = "cpu", threads: int = 1) -> list[dict[str, Any]]:
    """Train or resume one cohort and return each run's summary row; executed in a worker
    process.

    Uses `threads` torch threads (threads × worker processes within the cores). While it
    runs, `worker.json` in each run's directory names the host and process. A run that
    diverges gets status "failed" with the recorded reason; other errors raise.
    """
    import torch

    torch.set_num_threads(threads)
    configs = [RunConfig.from_json(text) for text in config_jsons]
    results = None if root is None else Path(root)
    directories = [store.run_dir(c, s, results) for c, s in zip(configs, seeds)]
    worker = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}

    def note(epoch: int | None = None) -> None:  # who trains the runs, and how far they are
        text = json.dumps({**worker, "epoch": epoch, "epochs": configs[0].training.epochs}).encode()
        for directory in directories:
            files.atomic_write_bytes(directory / WORKER_FILE, text)

    note()
    try:
        outcomes = train_cohort(LOOPS[configs[0].task_name], configs, seeds, results,
                                progress=False, on_epoch=lambda state: note(state.epoch),
                                device=device)
    finally:
        for directory in directories:
            (directory / WORKER_FILE).unlink(missing_ok=True)
    rows = []
    for outcome in outcomes:
        if isinstance(outcome, store.RunRecord):
            rows.append({"status": "trained", **final_summary(outcome)})
        else:
            rows.append({"status": "failed", "reason": outcome or
                         "not trained: its cohort resumed without it; run the sweep again"})
    return rows


def training_progress(directories: Iterable[Path]) -> str:
    """How far the cohorts training in `directories` (run directories) are, from their workers'
    notes: "epoch e/E" per cohort, least advanced first; "" when none has noted an epoch."""
    seen: dict[tuple, tuple[int, int]] = {}
    for directory in directories:
        try:
            note = json.loads((Path(directory) / WORKER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if note.get("epoch") is not None:
            seen[(note["host"], note["pid"])] = (note["epoch"], note["epochs"])
    return ", ".join(f"epoch {e}/{total}" for e, total in sorted(seen.values()))


def final_summary(record: store.RunRecord) -> dict[str, float]:
    """The numbers a sweep's summary shows for a run: its final task score ("accuracy" for
    working memory, mean test "r2" for separation), final Î and training seconds."""
    return {**LOOPS[record.config.task_name].summary(record.history),
            "seconds": float(record.provenance["train_seconds"])}


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


PROGRESS_SECONDS = 15.0  # how often a sweep's bar reads its workers' notes


def _as_completed(futures, waiting) -> Iterator[cf.Future]:
    """`cf.as_completed(futures)`, calling `waiting(pending futures)` every PROGRESS_SECONDS
    while none completes."""
    pending = set(futures)
    while pending:
        done, pending = cf.wait(pending, timeout=PROGRESS_SECONDS, return_when=cf.FIRST_COMPLETED)
        yield from done
        if pending and not done:
            waiting(pending)


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per worker process: the cores shared among the workers, at most
    $OMP_NUM_THREADS when that is set (two sweeps side by side, each started with
    OMP_NUM_THREADS=1, then keep threads × processes within the cores)."""
    threads = max(1, (cores or os.cpu_count() or 1) // workers)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(limit)) if limit.isdigit() and int(limit) > 0 else threads


def run_sweep(runs: list[Run], executor: cf.Executor | None = None, root: Path | None = None,
              device: str = "cpu", progress: bool = True, save: bool = True,
              cohort_size: int | None = None, memory_gb: float = DEFAULT_MEMORY_GB,
              workers: int | None = None) -> pd.DataFrame:
    """Train every run without a complete record, cohort by cohort, through `executor`, and
    summarise.

    executor: any `concurrent.futures.Executor` (its workers train with one torch thread);
    by default a ProcessPerRun of `workers` processes (default: one per core, at most one
    per cohort), which stops its processes when the sweep ends or is interrupted, each
    with `worker_threads(workers)` threads. Each cohort (`cohorts(runs, cohort_size, memory_gb)`)
    with a run to train is one task. Returns one row per run, in the order
    given: task, profile, config hash, λ, seed, status (stored / trained / failed), reason,
    final accuracy (working memory) or mean test R² (separation), final Î, seconds, path.
    The summary is also written to <results>/sweeps/ when `save`.
    """
    rows: dict[int, dict[str, Any]] = {}
    for i, run in enumerate(runs):
        row = _stored_status(run, root)
        if row is not None:
            rows[i] = row
    todo = [chunk for chunk in cohorts(runs, cohort_size, memory_gb)
            if any(i not in rows for i in chunk)]
    own = executor is None and bool(todo)
    threads = 1
    pool: cf.Executor | None = executor
    if pool is None and todo:
        cores = os.cpu_count() or 1
        workers = workers or max(1, min(cores, len(todo)))
        threads = worker_threads(workers, cores)
        pool = ProcessPerRun(workers)
    bar = tqdm(total=len(runs), initial=len(rows), disable=not progress, unit="run",
               desc="sweep")
    failed = sum(row["status"] == "failed" for row in rows.values())
    try:
        futures = {} if pool is None else {
            pool.submit(run_cohort, [runs[i].config.to_json() for i in chunk],
                        [runs[i].seed for i in chunk],
                        None if root is None else str(root), device, threads): chunk
            for chunk in todo}
        directories = {future: [store.run_dir(runs[i].config, runs[i].seed, root) for i in chunk]
                       for future, chunk in futures.items()}
        for future in _as_completed(futures, lambda pending: bar.set_postfix(
                failed=failed, remaining=len(runs) - bar.n,  # noqa: B023 (the count so far, read late on purpose)
                training=training_progress(d for f in pending for d in directories[f]))):
            chunk = futures[future]
            try:
                results = future.result()
            except Exception as error:
                results = [{"status": "failed", "reason": f"{type(error).__name__}: {error}"}
                           for _ in chunk]
            for i, row in zip(chunk, results):
                if i in rows:  # stored or failed before; its cohort-mates trained now
                    continue
                rows[i] = row
                failed += row["status"] == "failed"
                bar.update()
            bar.set_postfix(failed=failed, remaining=len(runs) - bar.n)
    finally:
        bar.close()
        if own and pool is not None:
            pool.shutdown(cancel_futures=True)
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
        files.atomic_write_bytes((store.RESULTS if root is None else Path(root)) / "sweeps" / name,
                                 summary.to_csv(index=False).encode())
    return summary


def seed_ranges(seeds: Iterable[int]) -> str:
    """Seeds as `mifd sweep --seeds` takes them: runs of consecutive seeds as "a-b"."""
    parts: list[list[int]] = []
    for seed in sorted(set(seeds)):
        if parts and seed == parts[-1][1] + 1:
            parts[-1][1] = seed
        else:
            parts.append([seed, seed])
    return " ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)


def _profile_changes(records: dict[str, list]) -> tuple[str, list[str]]:
    """The profile these records ({label: [RunRecord, …]}) were trained at and their settings
    beyond it as `--set` options (per-run settings but λ as one list each)."""
    runs = [r for rs in records.values() for r in rs]
    config = runs[0].config
    base_name = config.profile.split("+")[0]
    base = profile(base_name, config.task_name).to_dict()
    changes = [f"--set {section}.{name}={value!r}".replace("'", "")
               for section, fields in config.to_dict().items() if isinstance(fields, dict)
               for name, value in fields.items()
               if f"{section}.{name}" not in RunConfig.per_run_fields() and base[section][name] != value]
    for dotted in RunConfig.per_run_fields():  # per-run settings but λ: their values as a list
        section, name = dotted.split(".")
        values = sorted({getattr(getattr(r.config, section), name) for r in runs})
        if dotted != "training.lambda_mi" and values != [base[section][name]]:
            changes.append(f"--set {dotted}=" + ",".join(f"{v:g}" for v in values))
    return base_name, changes


def command(records: dict[str, list]) -> str:
    """The `mifd sweep` command that trains these records ({label: [RunRecord, …]}, runs
    of one task and profile differing in seed and λ), settings beyond the profile as --set."""
    runs = [r for rs in records.values() for r in rs]
    base_name, changes = _profile_changes(records)
    lambdas = sorted({r.config.training.lambda_mi for r in runs}, reverse=True)
    return " ".join([f"mifd sweep {runs[0].config.task_name} --profile {base_name}",
                     f"--seeds {seed_ranges(r.seed for r in runs)}",
                     "--lambda-mi " + " ".join(f"{v:g}" for v in lambdas), *changes])


def describe(records: dict[str, list]) -> str:
    """One sentence (Markdown) naming the records ({label: [RunRecord, …]}) for a caption: task, profile,
    each condition's configuration hash (its folder under results/) and seeds, and the command
    that trains them."""
    runs = [r for rs in records.values() for r in rs]
    config = runs[0].config
    parts = [f"{label}: `{rs[0].config.config_hash()}`, seeds {seed_ranges(r.seed for r in rs).replace(' ', ', ')}"
             for label, rs in records.items() if rs]
    task = LOOPS[config.task_name].description
    base_name, changes = _profile_changes(records)
    name = base_name + ("+custom" if changes else "")  # a record's stored name may predate its profile
    return (f"Records: {task}, profile `{name}` ({'; '.join(parts)}), under "
            f"`results/{config.task_name}/`; made by `{command(records)}`.")
