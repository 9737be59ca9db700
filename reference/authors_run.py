"""Train the authors' working-memory model with their own functions, in resumable chunks
(TensorFlow side; started by `reference/authors_runs.py`, which also stores the record).

Runs with the Python of _build/tf-venv. It imports the modules of a checkout of
cncs-fit/mio_rnn (`wm/`), edits none of them, and builds and trains exactly as their
`run_once.py` does: `set_randseed(seed)`, their `WorkingMemoryTask` with that script's
arguments, `set_model_for_task`, `setup_mine`, RMSprop for both networks with their
learning rates and clipnorm, `mine_initial_train`, then `train_with_mine` with
`n_mine = gp.n_mine_pre`. What this script sets, and why:

* `gp.epochs` and `gp.lambda_mi` (the run's length and dose), the seed (their
  `set_randseed`: the initial weights and the task's numpy draws; their noise generators are
  not seeded, so a run is a draw from their distribution, not a twin of a mifd seed);
* `gp.checkpoint_dir`, to a folder of the run, where their loop saves its Keras weights;
* `debug_mode=False` for `train_with_mine` (no figures);
* `gp.initial_mine_epoch` only with `--pretrain` (a smoke test of this driver; a stored
  record never sets it).

Their loop keeps everything in memory, so `train_with_mine` is called for `--chunk` epochs
at a time (a multiple of their 25-epoch weight record) and, after each chunk, everything it
owns is checkpointed in RUN/state: the model, the statistics network, both optimisers (slots
and step counts), the model's noise generator, TensorFlow's global generator (their MINE's
noise) and numpy's global state (their task), the loss lists and the weight record, and the
seconds spent. A run started again with the same RUN resumes after its last chunk. A chunk
that ends with a non-finite model weight ends the run ("died"). When the run is over,
RUN/run.npz holds the per-epoch losses, the weight snapshots (their recorder: W_rec, W_in,
W_out every 25 epochs, no biases), the final biases, and RUN/run.json what happened.

    _build/tf-venv/bin/python reference/authors_run.py CHECKOUT RUN --seed S --lambda-mi L
        --epochs E [--chunk 25] [--threads 1] [--pretrain N]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # their code needs Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

LOSS_NAMES = ("total", "task", "accs", "regularizer", "mi_before", "mi_after")
SNAPSHOT_EVERY = 25  # their train_with_mine records the weights every 25 epochs


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("run", type=Path, help="folder of this run (state, outputs)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--lambda-mi", type=float, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--chunk", type=int, default=SNAPSHOT_EVERY)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pretrain", type=int, default=None,
                        help="critic pre-training epochs (smoke tests only; theirs: 100)")
    args = parser.parse_args(argv)
    smoke = args.pretrain is not None  # a test of the driver: any chunk and length
    for name in ("chunk", "epochs"):
        value = getattr(args, name)
        if value <= 0 or (value % SNAPSHOT_EVERY and not smoke):
            parser.error(f"--{name} must be a positive multiple of {SNAPSHOT_EVERY} (their "
                         f"weight record's interval), got {value}")
    if not (args.checkout / "wm" / "wmtask_train.py").is_file():
        parser.error(f"{args.checkout} has no wm/wmtask_train.py: not a mio_rnn checkout")
    return args


class Run:
    """Their objects for one run, built by their functions, and what the driver keeps."""

    def __init__(self, args: argparse.Namespace):
        sys.path.insert(0, str(args.checkout.resolve() / "wm"))
        import gp_wm as gp
        import tasks
        import wmtask_train as their
        from parameters import WeightRecorder, WMMetrics, set_randseed

        self.their, self.gp, self.recorder_class = their, gp, WeightRecorder
        gp.epochs, gp.lambda_mi = args.epochs, args.lambda_mi
        gp.checkpoint_dir = str(args.run / "keras-weights")
        (args.run / "keras-weights").mkdir(parents=True, exist_ok=True)
        if args.pretrain is not None:
            gp.initial_mine_epoch = args.pretrain
        set_randseed(args.seed)
        tf.keras.backend.set_floatx("float32")
        tf.config.experimental.enable_tensor_float_32_execution(False)
        self.task = tasks.WorkingMemoryTask(batch_size=gp.bs, n_mem=gp.n_mem, len_pulse=40,
                                            freq_pulse=1.0 / 500.0, slope=0.1,
                                            transient=gp.transient, time_learn=gp.time_learn,
                                            time_test=0)
        self.model = their.set_model_for_task(gp, self.task)
        self.mine = their.setup_mine(self.model, self.task, gp)
        self.model_optimizer = tf.keras.optimizers.RMSprop(learning_rate=gp.learning_rate,
                                                           clipnorm=gp.clip_grad)
        self.mine_optimizer = tf.keras.optimizers.RMSprop(learning_rate=gp.learning_rate_mine,
                                                          clipnorm=gp.clip_grad_mine)
        self.model_metrics = WMMetrics()
        self.mi_metric = tf.keras.metrics.Mean(name="mi_metric")
        self.losses: dict[str, list] = {k: [] for k in LOSS_NAMES}
        self.snapshots: dict[str, list] = {"epoch": [], "w_rec": [], "w_in": [], "w_out": []}
        self.epochs_done, self.pretrained, self.seconds = 0, False, 0.0
        self.died_at: int | None = None

    def trackables(self) -> tf.train.Checkpoint:
        # the optimisers make their slots on their first step: build them before saving or
        # restoring, so a restore has somewhere to put the slots
        for optimizer, variables in ((self.model_optimizer, self.model.trainable_variables),
                                     (self.mine_optimizer, self.mine.trainable_variables)):
            optimizer.build(variables)
        return tf.train.Checkpoint(model=self.model, mine=self.mine,
                                   model_optimizer=self.model_optimizer,
                                   mine_optimizer=self.mine_optimizer,
                                   model_noise=self.model.noise_g,
                                   global_noise=tf.random.get_global_generator())

    def save(self, folder: Path) -> None:
        """Everything the driver owns into `folder`, written beside it and then renamed, so an
        interruption leaves the previous state whole."""
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        self.trackables().write(str(partial / "tf"))
        kept = {"losses": self.losses, "snapshots": self.snapshots,
                "epochs_done": self.epochs_done, "pretrained": self.pretrained,
                "seconds": self.seconds, "died_at": self.died_at,
                "numpy_state": np.random.get_state()}
        (partial / "driver.pkl").write_bytes(pickle.dumps(kept))
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        partial.rename(folder)
        shutil.rmtree(old, ignore_errors=True)

    def restore(self, folder: Path) -> None:
        self.trackables().read(str(folder / "tf")).assert_consumed()
        kept = pickle.loads((folder / "driver.pkl").read_bytes())
        self.losses, self.snapshots = kept["losses"], kept["snapshots"]
        self.epochs_done, self.pretrained = kept["epochs_done"], kept["pretrained"]
        self.seconds, self.died_at = kept["seconds"], kept["died_at"]
        np.random.set_state(kept["numpy_state"])

    def chunk(self, epochs: int) -> None:
        """`epochs` epochs of their `train_with_mine`; its weight record (which restarts at
        0 every call) is relabelled with the run's epochs."""
        recorder = self.recorder_class()
        started = time.perf_counter()
        self.losses = self.their.train_with_mine(
            epochs, n_mine=self.gp.n_mine_pre, losses=self.losses, model=self.model,
            mine=self.mine, task=self.task, model_optimizer=self.model_optimizer,
            mine_optimizer=self.mine_optimizer, w_recorder=recorder, gp=self.gp,
            model_metrics=self.model_metrics, mi_metric=self.mi_metric, debug_mode=False)
        self.seconds += time.perf_counter() - started
        for step, w_rec, w_in, w_out in zip(recorder.steps, recorder.W_recs, recorder.W_ins,
                                            recorder.W_outs):
            if step == 0 and self.snapshots["epoch"]:
                continue  # the state the previous chunk already recorded at its end
            self.snapshots["epoch"].append(self.epochs_done + step)
            for name, value in (("w_rec", w_rec), ("w_in", w_in), ("w_out", w_out)):
                self.snapshots[name].append(np.asarray(value))
        first = self.epochs_done
        self.epochs_done += epochs
        finite = all(np.isfinite(v.numpy()).all() for v in self.model.trainable_variables)
        if not finite:
            values = np.column_stack([np.asarray(self.losses[k][first:], dtype=float)
                                      for k in ("total", "mi_before")])
            bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
            self.died_at = first + 1 + int(bad[0]) if len(bad) else self.epochs_done

    def outputs(self, run: Path) -> None:
        arrays = {f"loss_{k}": np.asarray(v, dtype=np.float64) for k, v in self.losses.items()}
        arrays.update({f"snapshot_{k}": np.asarray(v) for k, v in self.snapshots.items()})
        arrays["final_b"] = self.model.bias.numpy()
        arrays["final_b_out"] = self.model.b_out.numpy()
        np.savez(run / "run.npz", **arrays)
        import tf_keras
        (run / "run.json").write_text(json.dumps({
            "epochs_done": self.epochs_done, "died_at": self.died_at,
            "seconds": self.seconds, "tensorflow": tf.__version__,
            "tf_keras": tf_keras.__version__, "set": {
                "epochs": self.gp.epochs, "lambda_mi": self.gp.lambda_mi,
                "initial_mine_epoch": self.gp.initial_mine_epoch}}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    args.run.mkdir(parents=True, exist_ok=True)
    state = args.run / "state"
    with contextlib.redirect_stdout(sys.stderr):  # their functions print as they go
        run = Run(args)
        if state.exists():
            run.restore(state)
            print(f"resumed after epoch {run.epochs_done}", file=sys.stderr)
        if not run.pretrained:
            started = time.perf_counter()
            run.their.mine_initial_train(run.model, run.mine, run.task, run.mine_optimizer,
                                         run.gp, run.mi_metric)
            run.seconds += time.perf_counter() - started
            run.pretrained = True
            run.save(state)
        while run.epochs_done < args.epochs and run.died_at is None:
            run.chunk(min(args.chunk, args.epochs - run.epochs_done))
            run.save(state)
            print(f"\n[driver] epoch {run.epochs_done}/{args.epochs}, "
                  f"{run.seconds / max(run.epochs_done, 1):.1f} s an epoch", file=sys.stderr)
        run.outputs(args.run)
    print(json.dumps({"epochs_done": run.epochs_done, "died_at": run.died_at}))


if __name__ == "__main__":
    main()
