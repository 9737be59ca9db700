"""One step of the authors' working-memory code on given weights and draws (TensorFlow side).

Run by `reference/step_differential.py` with the Python of _build/tf-venv, never by the
project's environment; it imports the authors' modules from a checkout of
cncs-fit/mio_rnn (its `wm/` folder) and edits none of them. Their objects are built by
their own functions (`set_model_for_task`, `setup_mine`, their `WorkingMemoryTask` with
the arguments of their `run_once.py`); then this script

* loads the shared weights into their model and statistics network,
* stands in for their random draws: the model's noise generator and the MINE's noise
  generator are replaced by objects that hand out the given standard-normal arrays (their
  code scales them by its own σ), and `tf.random.shuffle` returns the given permutation,
* and computes, each from the same starting weights:
  1. the states x, rates r = tanh(x) and outputs z over the segment from x0;
  2. Î of their MINE on those rates and the gradient of −Î for each critic tensor;
  3. the model step's loss (MSE + their L2 terms + λ·Î) and its gradient for each model
     tensor, then the model's weights after their `model_train_step_with_mine`;
  4. the critic's weights after their `mine_train_step` (RMSprop, clipnorm, as their
     `run_once.py` builds it), from the starting model weights: after one step, and after
     `critic_steps` steps on the same draws, with the output bias after each step.

    _build/tf-venv/bin/python reference/authors_step.py CHECKOUT CASE.npz OUT.npz

CASE.npz holds the arrays `step_differential.case_arrays` writes; OUT.npz gets the
quantities above under the names `step_differential` compares.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # their code needs Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MODEL_TENSORS = {"w_in": "W_in", "b": "bias", "w_rec": "W_rec", "w_out": "W_out",
                 "b_out": "b_out"}
CRITIC_LAYERS = {"dense_x": "dense_x", "dense_y": "dense_y", "dense_hidden": "d2",
                 "dense_out": "dense_out"}


class Replay:
    """Stands in for a `tf.random.Generator`: each `normal` call returns the next given
    standard-normal array (cycling), shifted and scaled as asked."""

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays, self.calls = arrays, 0

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32, name=None):
        array = self.arrays[self.calls % len(self.arrays)]
        self.calls += 1
        if tuple(shape) != array.shape:
            raise ValueError(f"asked for shape {tuple(shape)}, have {array.shape}")
        return tf.cast(mean, dtype) + tf.cast(stddev, dtype) * tf.constant(array, dtype)


def critic_variables(mine) -> dict[str, tf.Variable]:
    """mifd's name (e.g. "dense_x.weight") → their variable; mifd's weight is the transpose
    of Keras's kernel."""
    out = {}
    for ours, theirs in CRITIC_LAYERS.items():
        layer = getattr(mine.T, theirs)
        out[f"{ours}.weight"], out[f"{ours}.bias"] = layer.kernel, layer.bias
    return out


def model_variables(model) -> dict[str, tf.Variable]:
    return {ours: getattr(model, theirs) for ours, theirs in MODEL_TENSORS.items()}


def load(variables: dict[str, tf.Variable], case, prefix: str) -> None:
    for name, variable in variables.items():
        value = case[prefix + name]
        variable.assign(value.T if name.endswith(".weight") else value)


def export(variables: dict[str, tf.Variable], prefix: str, values=None) -> dict[str, np.ndarray]:
    """{prefix + name: array in mifd's layout} of the variables (or of `values` per name)."""
    out = {}
    for name, variable in variables.items():
        value = (variable if values is None else values[name]).numpy()
        out[prefix + name] = value.T if name.endswith(".weight") else value
    return out


def main(checkout: Path, case_path: Path, out_path: Path) -> None:
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("THREADS", "1")))
    tf.config.threading.set_inter_op_parallelism_threads(1)
    sys.path.insert(0, str(checkout / "wm"))
    with contextlib.redirect_stdout(sys.stderr):  # their functions print as they build
        import gp_wm as gp
        import mine as their_mine
        import tasks
        import wmtask_train as their
        from parameters import WMMetrics

        case = dict(np.load(case_path))
        tf.keras.backend.set_floatx("float32")
        tf.config.experimental.enable_tensor_float_32_execution(False)
        gp.lambda_mi = float(case["lambda_mi"])
        task = tasks.WorkingMemoryTask(batch_size=gp.bs, n_mem=gp.n_mem, len_pulse=40,
                                       freq_pulse=1.0 / 500.0, slope=0.1,
                                       transient=gp.transient, time_learn=gp.time_learn,
                                       time_test=0)
        model = their.set_model_for_task(gp, task)
        mine = their.setup_mine(model, task, gp)

    inputs = tf.constant(case["inputs"])
    teacher = tf.constant(case["targets"])
    x0 = tf.constant(case["x0"])
    model_vars, critic_vars = model_variables(model), critic_variables(mine)
    load(model_vars, case, "model.")
    load(critic_vars, case, "critic.")
    model.noise_g = Replay([case["xi"]])
    mine.noise_gen = Replay([case["noise_x"], case["noise_y"]])
    perm = tf.constant(case["perm"])
    tf.random.shuffle = lambda value, seed=None, name=None: perm

    out: dict[str, np.ndarray] = {}
    z = model(inputs, initial_state=x0)
    out.update({"states": model.x.numpy(), "rates": model.r.numpy(), "outputs": z.numpy()})

    _, r1, r2 = their_mine.run_and_extract_group(model, inputs, x0, gp)
    with tf.GradientTape() as tape:
        mi = mine(r1, r2)
        objective = -mi
    grads = tape.gradient(objective, list(critic_vars.values()))
    out["critic_mi"] = mi.numpy()
    out.update(export(critic_vars, "critic_grad.", dict(zip(critic_vars, grads))))

    with tf.GradientTape() as tape:
        z, r1, r2 = their_mine.run_and_extract_group(model, inputs, x0, gp)
        mi = mine(r1, r2)
        task_loss = their.mser(teacher, z)
        loss = task_loss + tf.add_n(model.losses) + gp.lambda_mi * mi
    grads = tape.gradient(loss, list(model_vars.values()))
    out.update({"model_mi": mi.numpy(), "model_mse": task_loss.numpy(),
                "model_loss": loss.numpy()})
    out.update(export(model_vars, "model_grad.", dict(zip(model_vars, grads))))

    model_optimizer = tf.keras.optimizers.RMSprop(learning_rate=gp.learning_rate,
                                                  clipnorm=gp.clip_grad)
    their.model_train_step_with_mine(model, mine, inputs, teacher, model_optimizer, gp,
                                     model_metrics=WMMetrics(), initial_state=x0, use_mi=True)
    out.update(export(model_vars, "model_after."))

    load(model_vars, case, "model.")
    mine_optimizer = tf.keras.optimizers.RMSprop(learning_rate=gp.learning_rate_mine,
                                                 clipnorm=gp.clip_grad_mine)
    course = []
    for step in range(int(case["critic_steps"])):
        their.mine_train_step(model, mine, inputs, initial_state=x0,
                              mine_optimizer=mine_optimizer, gp=gp)
        course.append(mine.T.dense_out.bias.numpy()[0])
        if step == 0:
            out.update(export(critic_vars, "critic_after."))
    out["output_bias_course"] = np.asarray(course)
    out.update(export(critic_vars, "critic_after_all."))
    np.savez(out_path, **out)
    import tf_keras
    print(json.dumps({"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
                      "optimizer": type(mine_optimizer).__module__ + "."
                      + type(mine_optimizer).__name__}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: authors_step.py CHECKOUT CASE.npz OUT.npz")
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
