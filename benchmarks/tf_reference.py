"""The working-memory critic step in TensorFlow 2 (the authors' framework) beside mifd's.

The reference is written here from SPEC §4 (it is not the authors' code): a Keras
statistics network Dense(20 → 512) + Dense(20 → 512), ReLU, Dense(512 → 512), ReLU,
Dense(512 → 1) on 40 000 joint and 40 000 marginal rows, the DV bound, and RMSprop
(ρ 0.9, lr 3e-3, ε 1e-7) with `clipnorm=4`, one step compiled with `tf.function`. mifd's
step (`mine.critic_step`, one run) is timed in the same run on the same shapes, with a
float32 critic and, where the CPU does bf16 natively, a bfloat16 one.

TensorFlow goes into its own virtual environment, _build/tf-venv (`tensorflow-cpu` from
PyPI), never into the project's; when it cannot be installed the script says so and times
mifd alone.

    .venv/bin/python benchmarks/tf_reference.py --threads 2 --repeats 5
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from mifd import mine
from mifd.config import profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from reference.tf_venv import tensorflow_python  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROWS, DIM, HIDDEN = 40_000, 20, 512

TF_SCRIPT = """
import json, sys, time
import tensorflow as tf
threads, repeats, rows, dim, hidden = map(int, sys.argv[1:6])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.random.set_seed(0)
dense_x, dense_y = tf.keras.layers.Dense(hidden), tf.keras.layers.Dense(hidden)
dense_h = tf.keras.layers.Dense(hidden, activation="relu")
dense_o = tf.keras.layers.Dense(1)
def critic(x, y):
    return dense_o(dense_h(tf.nn.relu(dense_x(x) + dense_y(y))))[:, 0]
optimizer = tf.keras.optimizers.RMSprop(learning_rate=3e-3, rho=0.9, epsilon=1e-7, clipnorm=4.0)
x = tf.random.normal((rows, dim)); y = 0.5 * x + tf.random.normal((rows, dim))
critic(x, y)
variables = [v for layer in (dense_x, dense_y, dense_h, dense_o) for v in layer.trainable_variables]
@tf.function
def step(x, y):
    noise_x = 0.1 * tf.random.normal(tf.shape(x)); noise_y = 0.1 * tf.random.normal(tf.shape(y))
    shuffled = tf.gather(y, tf.random.shuffle(tf.range(rows)))
    with tf.GradientTape() as tape:
        joint = critic(x + noise_x, y + noise_y)
        marginal = critic(x + noise_x, shuffled)
        mi = tf.reduce_mean(joint) - (tf.reduce_logsumexp(marginal) - tf.math.log(float(rows)))
        loss = -mi
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return mi
step(x, y)
best = float("inf")
for _ in range(repeats):
    started = time.perf_counter(); step(x, y).numpy(); best = min(best, time.perf_counter() - started)
print(json.dumps({"seconds": best, "version": tf.__version__}))
"""


def tensorflow_seconds(threads: int, repeats: int) -> dict | None:
    python = tensorflow_python()
    if python is None:
        return None
    result = subprocess.run([str(python), "-c", TF_SCRIPT, str(threads), str(repeats),
                             str(ROWS), str(DIM), str(HIDDEN)], capture_output=True, text=True,
                            env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    if result.returncode:
        print(f"TensorFlow step failed: {result.stderr.strip().splitlines()[-1]}")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def mifd_seconds(precision: str, repeats: int) -> float:
    cfg = dataclasses.replace(profile("paper", "wm").estimator, precision=precision)
    estimator = mine.MineEstimator(DIM, DIM, cfg, generators=torch.Generator().manual_seed(0))
    optimizer = mine.make_critic_optimizer(estimator, cfg)
    data = torch.Generator().manual_seed(1)
    g1 = torch.randn(1, 20, 2000, DIM, generator=data)  # 40 000 rows, one run
    g2 = 0.5 * g1 + torch.randn(1, 20, 2000, DIM, generator=data)
    draws = torch.Generator().manual_seed(2)
    mine.critic_step(estimator, optimizer, g1, g2, draws, cfg)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        mine.critic_step(estimator, optimizer, g1, g2, draws, cfg)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flops = 3 * 2 * (2 * ROWS) * HIDDEN * HIDDEN / 1e9  # the hidden layer, forward + 2 backward
    tf_result = tensorflow_seconds(args.threads, args.repeats)
    rows = []
    if tf_result is not None:
        rows.append((f"TensorFlow {tf_result['version']} (Keras, tf.function)", "float32",
                     tf_result["seconds"]))
    for precision in ["float32"] + (["bfloat16"] if mine.bf16_native("cpu") else []):
        rows.append(("mifd.mine", precision, mifd_seconds(precision, args.repeats)))
    print(f"critic step, {ROWS} + {ROWS} rows, width {HIDDEN}, {args.threads} threads; "
          f"hidden-layer products {flops:.0f} GFLOP")
    print("| implementation | products | s/step | GFLOP/s (hidden layer) | speed-up vs TensorFlow |")
    print("|---|---|---|---|---|")
    for name, precision, seconds in rows:
        ratio = f"{tf_result['seconds'] / seconds:.2f}×" if tf_result else "–"
        print(f"| {name} | {precision} | {seconds:.3f} | {flops / seconds:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
