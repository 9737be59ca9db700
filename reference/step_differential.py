"""One training step of mifd beside the authors' TensorFlow code, on the same weights,
inputs, initial state and random draws: where do the two implementations differ?

For each case (the `paper` profile's initial networks of a seed, and the networks of a
stored paper-profile run at a snapshot) this script draws one working-memory batch with
mifd's task, an initial state x0 ~ N(0, I), the state noise ξ, the critic's permutation π
and its input noise, writes them with both networks' weights to an .npz, runs
`reference/authors_step.py` in the TensorFlow environment on a checkout of the authors'
repository, computes the same quantities with mifd, and prints, per quantity, the largest
absolute difference and that difference relative to the largest magnitude of the authors'
value:

* states x, rates tanh(x), outputs z over the 2000-step segment from x0;
* Î of the critic on those rates, and the gradient of −Î for each critic tensor;
* the model step's MSE, its loss (MSE + L2 + λ·Î) and the gradient of the loss for each
  model tensor, and the model's weights after one RMSprop step with per-tensor clipping;
* the critic's weights after one RMSprop step with per-tensor clipping.

mifd's side uses its own parts: `LeakyRNN.forward_with_rates`, `MineEstimator.estimate`
on a `mine.Draw` holding the shared draws, `train.l2_penalty`, `optim.clip_per_tensor_norm`
and the optimisers of `train.init_wm`, in the order of `train.model_phase_step` and
`mine.ascend`. Every quantity whose relative difference stays within `TOLERANCE` (the
worst-case relative rounding of a float32 sum over the batch's 40 000 rows, which the
critic's terms and every gradient are) is float32 rounding; a larger one is a difference
between the implementations. The critic after `CRITIC_STEPS` steps on the same draws is
judged against a negative control instead (`against_control`): mifd against itself with
the batch's rows in reverse order, which changes only the order of its float32 sums.

What it found at 59a2f79 (results/reference/step_differential.json): everything agrees to
rounding except the critic's output bias. The DV bound is unchanged when every score
shifts by the same amount, so the exact gradient of Î with respect to that bias is zero;
mifd's is ≈ 1e-7, the authors' log(mean(exp T)) in float32 leaves ≈ 5e-4, and RMSprop's
first step, which divides by the root of the gradient's own mean square, turns that
rounding into a step of ≈ 0.004 (the size of a real one).

    .venv/bin/python -m reference.step_differential --checkout PATH [--commit SHA]

The checkout is a work tree of cncs-fit/mio_rnn (commit 59a2f79 was compared); never copy
its files into this repository. TensorFlow, tf-keras and their imports go into
_build/tf-venv (made on first use). The table is also written to
results/reference/step_differential.json with the versions, commit and processor.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mifd import files, machine, store
from mifd.config import profile
from mifd.mine import Draw, ascend, make_critic_optimizer
from mifd.models import draw_noise, split_groups
from mifd.optim import clip_per_tensor_norm
from mifd.tasks import cohort_onsets, wm_signals
from mifd.train import init_wm, l2_penalty

from .tf_venv import tensorflow_python

ROOT = Path(__file__).resolve().parent.parent
AUTHORS_STEP = Path(__file__).with_name("authors_step.py")
REPOSITORY = "cncs-fit/mio_rnn"
OUT = ROOT / "results" / "reference" / "step_differential.json"
TF_PACKAGES = ("tensorflow-cpu", "tf-keras", "scikit-learn", "matplotlib", "pandas",
               "networkx", "seaborn")
ROWS = 40_000  # the paper batch: 20 sequences × 2000 steps
TOLERANCE = ROWS * 2.0**-24  # relative: the worst-case rounding of a float32 sum over the rows
CRITIC_STEPS = 50  # critic steps on one batch's draws, to see where the output bias goes
MODEL_TENSORS = ("w_in", "b", "w_rec", "w_out", "b_out")
CRITIC_TENSORS = tuple(f"{layer}.{kind}" for layer in ("dense_x", "dense_y", "dense_hidden",
                                                        "dense_out")
                       for kind in ("weight", "bias"))


def case_arrays(seed: int, snapshot: tuple[Path, int] | None = None,
                critic_steps: int = CRITIC_STEPS) -> dict[str, np.ndarray]:
    """The shared inputs of one case: both networks' weights in mifd's layout (one run, the
    run axis dropped; "model.<name>", "critic.<name>"), a batch's learning segment
    ("inputs" (B, T, 4), "targets" (B, T, 2)), "x0" (B, N), "xi" (B, T, N) standard normal,
    "perm" (B·T,), "noise_x"/"noise_y" (B·T, N/2) standard normal, "lambda_mi", and
    "critic_steps", how many critic steps both take on these draws.

    The networks are the `paper` profile's initial ones for `seed`, with the model replaced
    by a stored record's snapshot when `snapshot` = (record directory, epoch) is given (the
    critic stays the fresh one: snapshots hold no critic)."""
    config = profile("paper", "wm")
    state = init_wm(config, seed)
    if snapshot is not None:
        record = store.load_record(snapshot[0])
        index = int(np.flatnonzero(record.snapshot_epochs == snapshot[1])[0])
        with torch.no_grad():
            for name, p in state.model.named_parameters():
                p.copy_(torch.from_numpy(record.snapshots[name][index]).unsqueeze(0))
    task = config.task
    onsets = cohort_onsets(task, [np.random.default_rng(seed)])
    inputs, targets, _ = wm_signals(task, torch.from_numpy(onsets))
    g = torch.Generator().manual_seed(seed)
    n_units, batch, steps = config.model.n_units, task.batch_size, task.n_learn
    rows = batch * steps
    arrays = {
        "inputs": inputs[:, task.n_transient:], "targets": targets[:, task.n_transient:],
        "x0": draw_noise(g, (batch, n_units)), "xi": draw_noise(g, (batch, steps, n_units)),
        "perm": torch.randperm(rows, generator=g),
        "noise_x": draw_noise(g, (rows, n_units // 2)),
        "noise_y": draw_noise(g, (rows, n_units // 2)),
        "lambda_mi": torch.tensor(config.training.lambda_mi),
        "critic_steps": torch.tensor(critic_steps)}
    arrays.update({f"model.{n}": p[0] for n, p in state.model.named_parameters()})
    arrays.update({f"critic.{n}": p[0] for n, p in state.estimator.statistics.named_parameters()})
    return {k: v.detach().numpy() for k, v in arrays.items()}


def mifd_step(case: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The quantities `authors_step.py` computes, by mifd, from the same case."""
    config = profile("paper", "wm")
    state = init_wm(config, 0)
    model, estimator = state.model, state.estimator
    one = {k: torch.from_numpy(v).unsqueeze(0) for k, v in case.items()}

    def load() -> None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(one[f"model.{name}"])
            for name, p in estimator.statistics.named_parameters():
                p.copy_(one[f"critic.{name}"])

    def draw(rates: torch.Tensor, reverse: bool = False) -> Draw:
        """The shared draw on these rates; `reverse`: the same pairs with the rows in reverse
        order (equal in exact arithmetic, summed in another order in float32)."""
        g1, g2 = split_groups(rates)
        std = config.estimator.noise_std
        x, y = g1.reshape(1, -1, g1.shape[-1]), g2.reshape(1, -1, g2.shape[-1])
        perm, noise_x, noise_y = one["perm"], std * one["noise_x"], std * one["noise_y"]
        if reverse:
            last = x.shape[1] - 1
            x, y, noise_x, noise_y = (a.flip(1) for a in (x, y, noise_x, noise_y))
            perm = last - perm.flip(1)
        return Draw(x, y, perm, noise_x, noise_y)

    def critic_course(reverse: bool) -> dict[str, torch.Tensor]:
        """`critic_steps` critic steps on the draw from the starting weights: the critic
        after the first and after the last, and the output bias after each."""
        load()
        with torch.no_grad():
            _, rates, _ = model.forward_with_rates(*segment)
        optimizer = make_critic_optimizer(
            estimator, config.estimator, eps_inside_sqrt=config.training.rmsprop_eps_inside_sqrt)
        found, course = {}, []
        for step in range(int(case["critic_steps"])):
            optimizer.zero_grad(set_to_none=True)
            ascend(estimator, optimizer, estimator.estimate(draw(rates, reverse)),
                   config.estimator)
            course.append(float(estimator.statistics.dense_out.bias.detach()[0, 0]))
            if step == 0:
                found.update({f"critic_after.{n}": p[0].clone()
                              for n, p in estimator.statistics.named_parameters()})
        found["output_bias_course"] = torch.tensor(course)
        found.update({f"critic_after_all.{n}": p[0].clone()
                      for n, p in estimator.statistics.named_parameters()})
        return found

    load()
    segment = one["inputs"], one["x0"], one["xi"]
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        states, rates, outputs = model.forward_with_rates(*segment)
    out.update({"states": states[0], "rates": rates[0], "outputs": outputs[0]})

    mi = estimator.estimate(draw(rates))
    critic = dict(estimator.statistics.named_parameters())
    grads = torch.autograd.grad(-mi.sum(), list(critic.values()))
    out["critic_mi"] = mi
    out.update({f"critic_grad.{n}": g[0] for n, g in zip(critic, grads)})

    for p in estimator.parameters():
        p.requires_grad_(False)
    states, rates, outputs = model.forward_with_rates(*segment)
    mi = estimator.estimate(draw(rates))
    mse = (outputs - one["targets"]).square().mean(dim=(1, 2, 3))
    loss = mse + l2_penalty(model, config) + config.training.lambda_mi * mi
    state.model_opt.zero_grad(set_to_none=True)
    loss.sum().backward()
    out.update({"model_mi": mi, "model_mse": mse, "model_loss": loss})
    out.update({f"model_grad.{n}": p.grad[0].clone() for n, p in model.named_parameters()})
    clip_per_tensor_norm(list(model.parameters()), config.training.clip_norm)
    state.model_opt.step()
    out.update({f"model_after.{n}": p[0].clone() for n, p in model.named_parameters()})
    for p in estimator.parameters():
        p.requires_grad_(True)

    out.update(critic_course(reverse=False))
    out.update({f"reversed_{k}": v for k, v in critic_course(reverse=True).items()})
    return {k: v.detach().numpy() for k, v in out.items()}


QUANTITIES = {
    "states x": ("states",), "rates tanh(x)": ("rates",), "outputs z": ("outputs",),
    "Î (critic step)": ("critic_mi",),
    "∇(−Î), critic": tuple(f"critic_grad.{n}" for n in CRITIC_TENSORS[:-1]),
    "∇(−Î), output bias": ("critic_grad.dense_out.bias",),
    "critic after one step": tuple(f"critic_after.{n}" for n in CRITIC_TENSORS[:-1]),
    "output bias after it": ("critic_after.dense_out.bias",),
    f"critic after {CRITIC_STEPS} steps": tuple(f"critic_after_all.{n}"
                                                for n in CRITIC_TENSORS[:-1]),
    f"output bias after {CRITIC_STEPS}": ("critic_after_all.dense_out.bias",),
    "Î (model step)": ("model_mi",), "MSE": ("model_mse",), "model loss": ("model_loss",),
    "∇ loss, model": tuple(f"model_grad.{n}" for n in MODEL_TENSORS),
    "model after one step": tuple(f"model_after.{n}" for n in MODEL_TENSORS),
}


# the negative control: mifd against itself with the batch's rows in reverse order, which
# changes nothing but the order of every float32 sum over the rows
CONTROL_QUANTITIES = {label: keys for label, keys in QUANTITIES.items()
                      if any(key.startswith("critic_after_all.") for key in keys)}


def differences(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray],
                start: dict[str, np.ndarray], quantities=QUANTITIES) -> list[dict]:
    """Per quantity of `quantities`: the largest |ours − theirs| over its tensors, the
    tensor where it is largest relative to that tensor's scale, and the largest relative
    difference. Scales: the largest |theirs| of the tensor; for weights after a step, the
    largest |change| the authors' code made from `start` (so that a wrong step shows); for Î,
    1 nat (its log-mean-exp over 40 000 float32 terms rounds at ≈ 1e-5 nats whatever Î's
    size)."""
    rows = []
    for label, keys in quantities.items():
        worst = {"relative": -1.0}
        absolute = 0.0
        for key in keys:
            a = np.asarray(ours[key], dtype=np.float64).reshape(np.shape(theirs[key]))
            b = np.asarray(theirs[key], dtype=np.float64)
            difference = float(np.abs(a - b).max())
            absolute = max(absolute, difference)
            if "_after" in key:
                before = start[key.replace("model_after.", "model.")
                               .replace("critic_after_all.", "critic.")
                               .replace("critic_after.", "critic.")]
                scale = float(np.abs(b - before.reshape(b.shape)).max())
            elif key.endswith("_mi"):
                scale = 1.0
            else:
                scale = float(np.abs(b).max())
            relative = difference / scale if scale > 0 else 0.0 if difference == 0 else np.inf
            if relative > worst["relative"]:
                worst = {"relative": relative, "tensor": key.split(".", 1)[-1], "scale": scale}
        rows.append({"quantity": label, "max_abs_difference": absolute,
                     "largest_in": worst["tensor"], "scale": worst["scale"],
                     "relative": worst["relative"],
                     "within_rounding": worst["relative"] <= TOLERANCE})
    return rows


CONTROL_FACTOR = 2.0  # stated before the control was first run


def against_control(rows: list[dict], control: list[dict]) -> list[dict]:
    """Judge each quantity that has a negative control by it instead of by rounding alone:
    after many critic steps RMSprop magnifies rounding (it divides every gradient by the
    root of its own mean square, so a near-zero gradient takes a full step of a sign set by
    rounding), and two float32 runs of mifd that differ only in the order of their sums drift
    apart too. Such a quantity is "within_rounding" when its relative difference is at most
    `CONTROL_FACTOR` times the control's (or within `TOLERANCE`)."""
    limits = {r["quantity"]: r["relative"] for r in control}
    judged = []
    for row in rows:
        if row["quantity"] in limits:
            limit = max(TOLERANCE, CONTROL_FACTOR * limits[row["quantity"]])
            row = {**row, "control_relative": limits[row["quantity"]],
                   "within_rounding": row["relative"] <= limit}
        judged.append(row)
    return judged


def authors_step(python: Path, checkout: Path, case: dict[str, np.ndarray]
                 ) -> tuple[dict[str, np.ndarray], dict]:
    """Run `authors_step.py` on `case`; returns its arrays and the versions it reports."""
    with tempfile.TemporaryDirectory() as tmp:
        case_path, out_path = Path(tmp) / "case.npz", Path(tmp) / "out.npz"
        np.savez(case_path, **case)
        done = subprocess.run([str(python), str(AUTHORS_STEP), str(checkout), str(case_path),
                               str(out_path)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError("the authors' step failed:\n" + done.stderr[-3000:])
        with np.load(out_path) as data:
            arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(done.stdout.strip().splitlines()[-1])


def checkout_commit(checkout: Path, given: str | None) -> str:
    """The commit of `checkout` (from git when it is a work tree, else `given`)."""
    found = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"],
                           capture_output=True, text=True)
    if found.returncode == 0:
        return found.stdout.strip()
    if given is None:
        raise SystemExit(f"{checkout} is not a git work tree: name its commit with --commit")
    return given


def require_checkout(parser: argparse.ArgumentParser, checkout: Path) -> None:
    """Exit with the parser's one-line error (status 2) unless `checkout` holds the authors'
    working-memory code."""
    if not (checkout / "wm" / "wmtask_train.py").is_file():
        parser.error(f"{checkout} has no wm/wmtask_train.py: not a {REPOSITORY} checkout")


def _line(row: dict, note: str) -> str:
    return (f"{row['quantity']:<24}{row['max_abs_difference']:>10.3g}{row['largest_in']:>20}"
            f"{row['scale']:>11.3g}{row['relative']:>10.3g}  {note}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True,
                        help="work tree of cncs-fit/mio_rnn")
    parser.add_argument("--commit", help="its commit, when the checkout has no .git")
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--record", type=Path,
                        default=ROOT / "results" / "wm" / "9e77888b0ca2" / "seed-1001",
                        help="a stored paper-profile record whose last snapshot is a case")
    args = parser.parse_args(argv)
    require_checkout(parser, args.checkout)
    commit = checkout_commit(args.checkout, args.commit)
    python = tensorflow_python(TF_PACKAGES)
    if python is None:
        sys.exit(1)
    cases = {"initial networks": None}
    if args.record.is_dir():
        last = int(store.load_record(args.record).snapshot_epochs[-1])
        cases[f"stored paper run, epoch {last}"] = (args.record, last)
    report = {"authors_commit": commit, "mifd_commit": store.git_commit(), "seed": args.seed,
              "cpu": machine.cpu_name(machine.cpu()), "torch": torch.__version__,
              "tolerance": TOLERANCE, "cases": {}}
    for label, snapshot in cases.items():
        case = case_arrays(args.seed, snapshot)
        theirs, versions = authors_step(python, args.checkout, case)
        report.update(versions)
        ours = mifd_step(case)
        reordered = {k.removeprefix("reversed_"): v for k, v in ours.items()
                     if k.startswith("reversed_")}
        control = differences(reordered, ours, case, CONTROL_QUANTITIES)
        rows = against_control(differences(ours, theirs, case), control)
        report["cases"][label] = {
            "rows": rows, "control_rows": control,
            "record": str(snapshot[0].resolve().relative_to(ROOT)) if snapshot else None,
            "output_bias_start": float(case["critic.dense_out.bias"][0]),
            "output_bias_mifd": ours["output_bias_course"].tolist(),
            "output_bias_authors": theirs["output_bias_course"].tolist()}
        print(f"\n{label} (seed {args.seed}):")
        print(f"{'quantity':<24}{'max |Δ|':>10}{'largest in':>20}{'its scale':>11}"
              f"{'relative':>10}  verdict")
        for row in rows:
            print(_line(row, "rounding" if row["within_rounding"] else "DIFFERS"))
        for row in control:
            print(_line(row, "(mifd against mifd, rows reversed)"))
        for who, course in (("mifd", ours), ("authors", theirs)):
            print(f"output bias over {CRITIC_STEPS} critic steps, {who}: "
                  f"{case['critic.dense_out.bias'][0]:.4f} → "
                  f"{course['output_bias_course'][-1]:.4f}")
    files.atomic_write_bytes(OUT, (json.dumps(report, indent=1, ensure_ascii=False) + "\n")
                             .encode())
    print(f"\nwritten {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
