"""MINE: the Donsker–Varadhan estimate of I(G1; G2) and its statistics network (SPEC §4),
for a cohort of R independent runs at once (a single run is a cohort of one).

* `dv_bound`: the minibatch Donsker–Varadhan bound from joint and marginal critic scores,
  mean(T_joint) − (logsumexp(T_marg) − log n), in nats, per run.
* `StatisticsNetwork`: T(x, y) = Dense₁(act(Dense_H(act(Dense_Hˣ(x) + Dense_Hʸ(y))))),
  ReLU and width 512 for working memory, LeakyReLU 0.25, width 100 and no output bias for
  separation, with Keras initialisation (Glorot-uniform kernels, zero biases); every weight
  carries a leading run axis.
* `MineEstimator`: flattens the two groups' activity into samples, draws the marginal pairs
  by one permutation of the G2 rows, adds the task's input noise and returns Î in nats per
  run, differentiable with respect to the critic and to the activity. The two terms share
  the first layer and run with a hand-written backward that works in arrays reused from
  call to call (`_SharedFirstLayerDV`); `MineEstimator.reference` is the plain autograd
  form it is tested against. With `precision = "bfloat16"` the three large products (the
  hidden layer forward and its two backward products) run in bfloat16 with float32
  accumulation; everything else, the DV bound and its log-sum-exp included, in float32.
* `make_critic_optimizer`, `critic_step`: the critic's own optimiser and one ascent step on Î
  with the task's gradient clipping (SPEC §4.4), per run.

All randomness (initial weights, row subsets, permutations, noise) is drawn from
`torch.Generator` objects passed in, one per run, each in the order a run alone draws, so a
run is reproduced by its seeds whichever cohort it trains in.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import EstimatorConfig
from .machine import cpu
from .models import glorot_uniform, per_run_generators
from .optim import clip_per_tensor_norm, clip_values, make_optimizer
from .workspace import Workspace

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def dv_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> torch.Tensor:
    """Donsker–Varadhan bound mean(T_joint) − log mean(exp T_marg), in nats (SPEC §4.1).

    t_joint: (..., n) critic scores of the joint pairs; t_marginal: (..., m) scores of the
    marginal pairs, the leading axes (e.g. runs) shared. The log-mean-exp is computed as
    logsumexp(T_marg) − log m, which stays finite for scores of any size. Returns (...,).
    """
    log_mean_exp = torch.logsumexp(t_marginal, dim=-1) - math.log(t_marginal.shape[-1])
    return t_joint.mean(-1) - log_mean_exp


TERM_NAMES = ("mi_joint_term", "mi_marginal_term", "marginal_score_max")


def dv_terms(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> dict[str, torch.Tensor]:
    """The parts of the Donsker–Varadhan bound, detached, each (...,) like `dv_bound`:
    "mi_joint_term" mean(T_joint) and "mi_marginal_term" log mean(exp T_marg) (nats; Î is
    their difference), and "marginal_score_max" the largest marginal score, the one that
    dominates the log-mean-exp when the critic collapses (a float32 exp overflows past ≈ 88.7)."""
    t_joint, t_marginal = t_joint.detach(), t_marginal.detach()
    return {"mi_joint_term": t_joint.mean(-1),
            "mi_marginal_term": torch.logsumexp(t_marginal, dim=-1) - math.log(t_marginal.shape[-1]),
            "marginal_score_max": t_marginal.amax(-1)}


class _RunLinear(nn.Module):
    """R independent dense layers: y[r] = x[r] @ weight[r]ᵀ + bias[r].

    weight: (R, out, in) (torch's (out, in) per run); bias: (R, out) or None."""

    def __init__(self, n_in: int, n_out: int, generators: list, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([glorot_uniform(n_out, n_in, g)  # biases zero
                                                for g in generators]))
        self.bias = nn.Parameter(torch.zeros(len(generators), n_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, n, in) -> (R, n, out)."""
        out = torch.bmm(x, self.weight.transpose(1, 2))
        return out if self.bias is None else out + self.bias.unsqueeze(1)


class StatisticsNetwork(nn.Module):
    """The critic T(x, y) of SPEC §4.3 for R runs, with separate first layers for the groups.

    T(x, y) = Dense₁(act(Dense_H(act(Dense_Hˣ(x) + Dense_Hʸ(y))))). Both first layers and the
    hidden layer have biases; the output layer has one when `cfg.output_bias`. `act` is ReLU
    (`cfg.activation == "relu"`) or LeakyReLU with slope `cfg.negative_slope`. Each run's
    weights are drawn from its own generator, layer by layer in that order.
    """

    def __init__(self, dim_x: int, dim_y: int, cfg: EstimatorConfig,
                 generators: Sequence[torch.Generator | None] | torch.Generator | None = None):
        super().__init__()
        generators = per_run_generators(generators)
        # Per run, the draws go layer by layer, as a lone run's would.
        layers: list[list[_RunLinear]] = [[] for _ in range(4)]
        for g in generators:
            for layer, (n_in, n_out, bias) in zip(layers, (
                    (dim_x, cfg.hidden, True), (dim_y, cfg.hidden, True),
                    (cfg.hidden, cfg.hidden, True), (cfg.hidden, 1, cfg.output_bias))):
                layer.append(_RunLinear(n_in, n_out, [g], bias))
        self.dense_x, self.dense_y, self.dense_hidden, self.dense_out = (
            _stack_layers(runs) for runs in layers)
        self.negative_slope = cfg.negative_slope if cfg.activation == "leaky_relu" else None

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        if self.negative_slope is None:
            return F.relu(z)
        return F.leaky_relu(z, self.negative_slope)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores T(x_i, y_i): x (R, n, dim_x), y (R, n, dim_y) → (R, n)."""
        hidden = self.activation(self.dense_hidden(self.activation(
            self.dense_x(x) + self.dense_y(y))))
        return self.dense_out(hidden).squeeze(-1)


def _stack_layers(layers: list[_RunLinear]) -> _RunLinear:
    """One `_RunLinear` holding the given one-run layers' weights along the run axis."""
    first = layers[0]
    first.weight = nn.Parameter(torch.cat([layer.weight.data for layer in layers]))
    if first.bias is not None:
        first.bias = nn.Parameter(torch.cat([cast(nn.Parameter, layer.bias).data for layer in layers]))
    return first


def _workspace_arrays(shape: tuple[int, ...], like: torch.Tensor, low: torch.dtype | None
                      ) -> tuple[torch.Tensor, ...]:
    """The arrays of `_SharedFirstLayerDV`: four float32 arrays of `shape` (2, R, n, hidden)
    and, for a bfloat16 critic, three more in bfloat16 (kept in a `Workspace`)."""
    arrays = tuple(like.new_empty(shape) for _ in range(4))
    if low is not None:
        arrays += tuple(like.new_empty(shape, dtype=low) for _ in range(3))
    return arrays


def _activate_(z: torch.Tensor, slope: float | None) -> None:
    """ReLU (slope None) or LeakyReLU in place."""
    if slope is None:
        z.relu_()
    else:
        F.leaky_relu_(z, slope)


def _activation_backward_(grad: torch.Tensor, h: torch.Tensor, slope: float | None) -> None:
    """grad ← grad·act'(z) in place, read from the activations h = act(z) (sign h = sign z):
    act' is 1 where z > 0, else 0 (ReLU) or the slope (LeakyReLU)."""
    if slope is None:
        torch.ops.aten.threshold_backward.grad_input(grad, h, 0.0, grad_input=grad)
    else:
        torch.ops.aten.leaky_relu_backward.grad_input(grad, h, slope, True, grad_input=grad)


def _row_sums(a: torch.Tensor) -> torch.Tensor:
    """(R, rows, cols) -> (R, cols) sums over the rows, as batched matrix-vector products
    (about twice as fast as a reduction on tall arrays)."""
    return torch.bmm(a.new_ones(a.shape[0], 1, a.shape[1]), a).squeeze(1)


def _flat_rows(perm: torch.Tensor) -> torch.Tensor:
    """(R, n) per-run row indices -> (R·n,) indices into the runs' rows stacked as (R·n, ·)."""
    runs, n = perm.shape
    return (perm + n * torch.arange(runs, device=perm.device).unsqueeze(1)).reshape(-1)


def _hidden_product(h1: torch.Tensor, w_h: torch.Tensor, b_h: torch.Tensor, out: torch.Tensor,
                    low: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    """out[half] = h1[half] @ w_hᵀ + b_h for the joint and marginal halves, per run.

    h1, out: (2, R, n, H); w_h: (R, H, H); b_h: (R, H). With `low` (two bfloat16 arrays of
    h1's shape: h1's copy and the product's result) the product runs in bfloat16 (float32
    accumulation, result rounded to bfloat16) and the bias is added in float32."""
    w_t = w_h.transpose(1, 2).contiguous()  # a product with a transposed view is ≈12 % slower
    if low is None:
        for half in range(2):
            torch.baddbmm(b_h.unsqueeze(1), h1[half], w_t, out=out[half])
        return
    h1_low, product = low
    h1_low.copy_(h1)
    w_low = w_t.to(h1_low.dtype)
    for half in range(2):
        torch.bmm(h1_low[half], w_low, out=product[half])
        torch.add(product[half], b_h.unsqueeze(1), out=out[half])


class _SharedFirstLayerDV(torch.autograd.Function):
    """Î_r = dv_bound(T_r(x, y_joint), T_r(x, y_marginal[perm_r])) for every run r, with a
    hand-written backward.

    Shapes: x (R, n, dx), y_joint and y_marginal (R, n, dy), perm (R, n); the weights in
    torch's (out, in) layout with the run axis first. In the (2, R, n, hidden) arrays, half 0
    holds the joint pairs and half 1 the marginal pairs (x_i, y_marginal[perm[i]]).
    Dense_Hˣ(x) is computed once for both halves, the marginal half's Dense_Hʸ rows are a
    permutation of one product y_marginal·W_yᵀ (shared with the joint half when `shared`,
    i.e. y_joint is y_marginal), and the hidden layer is one product per half. The
    activations are kept in two workspace arrays and the backward works in the other two,
    so it may run more than once. `low`: None (float32) or torch.bfloat16 for the three
    hidden-layer products.
    """

    @staticmethod
    def forward(ctx, x, y_joint, y_marginal, perm, w_x, b_x, w_y, b_y, w_h, b_h, w_o, b_o,
                slope, shared, workspace, keep_for_backward, low, terms):
        runs, n = x.shape[:2]
        shape = (2, runs, n, w_h.shape[1])
        arrays, lease = workspace.take((shape, x.dtype, x.device, low),
                                       lambda: _workspace_arrays(shape, x, low))
        h1, h2, scratch, work = arrays[:4]
        torch.baddbmm((b_x + b_y).unsqueeze(1), x, w_x.transpose(1, 2), out=h1[0])
        torch.bmm(y_marginal, w_y.transpose(1, 2), out=scratch[1])
        hidden = h1.shape[-1]
        torch.index_select(scratch[1].view(-1, hidden), 0, _flat_rows(perm),
                           out=scratch[0].view(-1, hidden))
        torch.add(h1[0], scratch[0], out=h1[1])
        if shared:
            h1[0].add_(scratch[1])
        else:
            h1[0].baddbmm_(y_joint, w_y.transpose(1, 2))
        _activate_(h1, slope)
        _hidden_product(h1, w_h, b_h, h2, (arrays[4], arrays[6]) if low is not None else None)
        _activate_(h2, slope)
        t = torch.matmul(h2, w_o.transpose(1, 2)).squeeze(-1)  # (2, R, n)
        if b_o is not None:
            t = t + b_o
        if keep_for_backward:
            ctx.save_for_backward(x, y_joint, y_marginal, perm, w_x, w_y, w_h, w_o)
            ctx.arrays, ctx.lease, ctx.t = arrays, lease, t
            ctx.slope, ctx.shared, ctx.low = slope, shared, low
        terms.update(dv_terms(t[0], t[1]))
        return dv_bound(t[0], t[1])

    @staticmethod
    def backward(ctx, grad_mi):
        x, y_joint, y_marginal, perm, w_x, w_y, w_h, w_o = ctx.saved_tensors
        h1, h2, scratch, work = ctx.arrays[:4]
        t, slope, low = ctx.t, ctx.slope, ctx.low
        needs = ctx.needs_input_grad
        runs, n = x.shape[:2]
        hidden = h1.shape[-1]
        g = grad_mi.unsqueeze(-1)  # (R, 1)
        d_t = torch.stack((g.expand(runs, n) / n, -g * torch.softmax(t[1], dim=-1)))  # (2, R, n)
        g_w_o = (torch.baddbmm(torch.bmm(d_t[0].unsqueeze(1), h2[0]), d_t[1].unsqueeze(1), h2[1])
                 if needs[10] else None)
        g_b_o = d_t.sum((0, 2)).unsqueeze(1) if needs[11] else None
        delta2 = torch.mul(d_t.unsqueeze(-1), w_o, out=work)  # w_o (R, 1, H) broadcasts
        _activation_backward_(delta2, h2, slope)
        if low is None:
            g_w_h = (torch.baddbmm(torch.bmm(delta2[0].transpose(1, 2), h1[0]),
                                   delta2[1].transpose(1, 2), h1[1]) if needs[8] else None)
            delta1 = scratch
            for half in range(2):
                torch.bmm(delta2[half], w_h, out=delta1[half])
        else:
            h1_low, delta_low, product = ctx.arrays[4:]
            delta_low.copy_(delta2)
            g_w_h = ((torch.bmm(delta_low[0].transpose(1, 2), h1_low[0]).float()
                      + torch.bmm(delta_low[1].transpose(1, 2), h1_low[1]).float())
                     if needs[8] else None)
            w_low = w_h.to(low)
            delta1 = scratch
            for half in range(2):
                torch.bmm(delta_low[half], w_low, out=product[half])
                delta1[half].copy_(product[half])
        g_b_h = _row_sums(delta2[0]) + _row_sums(delta2[1]) if needs[9] else None
        _activation_backward_(delta1, h1, slope)
        d_joint, d_marginal = delta1[0], delta1[1]
        # The marginal rows' gradient, moved back to the rows of y_marginal they were read from.
        inverse = torch.empty_like(perm).scatter_(
            1, perm, torch.arange(n, device=perm.device).expand(runs, n))
        d_unshuffled = work[0]
        torch.index_select(d_marginal.reshape(-1, hidden), 0, _flat_rows(inverse),
                           out=d_unshuffled.view(-1, hidden))
        g_w_y = g_y_joint = g_y_marginal = None
        if ctx.shared:
            d_y = d_unshuffled.add_(d_joint)
            g_w_y = torch.bmm(d_y.transpose(1, 2), y_joint) if needs[6] else None
            g_y_joint = torch.bmm(d_y, w_y) if needs[1] else None
        else:
            g_w_y = (torch.baddbmm(torch.bmm(d_joint.transpose(1, 2), y_joint),
                                   d_unshuffled.transpose(1, 2), y_marginal)
                     if needs[6] else None)
            g_y_joint = torch.bmm(d_joint, w_y) if needs[1] else None
            g_y_marginal = torch.bmm(d_unshuffled, w_y) if needs[2] else None
        both = d_joint.add_(d_marginal)
        g_w_x = torch.bmm(both.transpose(1, 2), x) if needs[4] else None
        g_b = _row_sums(both)
        g_x = torch.bmm(both, w_x) if needs[0] else None
        return (g_x, g_y_joint, g_y_marginal, None, g_w_x, g_b if needs[5] else None, g_w_y,
                g_b.clone() if needs[7] else None, g_w_h, g_b_h, g_w_o, g_b_o,
                None, None, None, None, None, None)


class Draw(NamedTuple):
    """The random part of one estimator call, for R runs of n sample rows each.

    x: (R, n, dim_x) G1 samples; y: (R, n, dim_y) G2 samples; perm: (R, n) permutations
    giving the marginal pairs (x_i, y_perm[i]); noise_x, noise_y: the input noise added
    inside the estimator, or None.
    """

    x: torch.Tensor
    y: torch.Tensor
    perm: torch.Tensor
    noise_x: torch.Tensor | None
    noise_y: torch.Tensor | None


def bf16_native(device: torch.device | str) -> bool:
    """Whether `device` multiplies bfloat16 matrices natively: a CUDA GPU that supports
    bf16, or a CPU with AVX512_BF16 or AMX (read from /proc/cpuinfo's flags, as torch's
    own capability string, e.g. "AVX512", does not say)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    extensions = cpu()["vector_extensions"]
    return "avx512_bf16" in extensions or "amx_bf16" in extensions


def check_precision(cfg: EstimatorConfig, device: torch.device | str) -> None:
    """ValueError (one line, naming the field) when `cfg.precision` needs a bfloat16 product
    that `device` does not do natively."""
    if cfg.precision == "bfloat16" and not bf16_native(device):
        raise ValueError(
            f"estimator.precision: 'bfloat16' needs native bf16 products (a CPU with "
            f"AVX512_BF16 or AMX, or a CUDA GPU), which {torch.device(device).type} here "
            "lacks; use 'float32'")


def kept_rows(n: int, fraction: float) -> int:
    """How many of `n` sample rows the critic sees when it sees `fraction` of them."""
    return n if fraction >= 1 else max(1, round(fraction * n))


class MineEstimator(nn.Module):
    """Î(G1; G2) in nats from two groups' activity, per run of a cohort (SPEC §4.1–4.3).

    Every call, for each run r in this order of draws from that run's generator:
    1. when `cfg.sample_fraction < 1`, a random subset of round(fraction·n) sample rows
       (the same rows of both groups, so pairs stay pairs);
    2. one permutation π of all remaining G2 rows, giving the marginal pairs (x_i, y_π(i));
    3. when `cfg.noise_inside`, Gaussian noise of std `cfg.noise_std` on x (both terms) and
       on the joint term's y. With `cfg.noise_asymmetric` (working memory) the marginal
       term's y is the shuffled y taken *before* the noise, so noise-free; without it the
       marginal y is the shuffled noisy y. With `noise_inside` off (separation) the caller
       adds the noise to the activity and the estimator adds none.

    The estimate is computed with the first layer shared between the joint and marginal
    terms (`_SharedFirstLayerDV`); `reference` is the same quantity computed as SPEC §4.2
    states it, and the two agree to float rounding (in float32).
    """

    def __init__(self, dim_x: int, dim_y: int, cfg: EstimatorConfig,
                 generators: Sequence[torch.Generator | None] | torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.statistics = StatisticsNetwork(dim_x, dim_y, cfg, generators=generators)
        self._workspace = Workspace()
        self.last_terms: dict[str, torch.Tensor] = {}  # `dv_terms` of the latest `estimate`

    def draw(self, g1: torch.Tensor, g2: torch.Tensor,
             generators: Sequence[torch.Generator] | torch.Generator) -> Draw:
        """Flatten g1, g2 ((R, ..., units) each; every index but the run's and the unit's is a
        sample) into samples and draw subset, π and noise for each run from its generator."""
        streams = cast(list[torch.Generator], per_run_generators(generators))
        runs = g1.shape[0]
        if len(streams) != runs:
            raise ValueError(f"{runs} runs of activity but {len(streams)} generators")
        if g1.shape[1:-1] != g2.shape[1:-1]:
            raise ValueError(f"the groups have sample shapes {tuple(g1.shape[1:-1])} and "
                             f"{tuple(g2.shape[1:-1])}")
        n = g1[0, ..., 0].numel()
        if self.cfg.sample_fraction < 1:
            keep = kept_rows(n, self.cfg.sample_fraction)
            rows = torch.stack([torch.randperm(n, generator=g, device=g.device)[:keep]
                                for g in streams]).to(g1.device)
            # gather the kept samples straight from the (possibly strided) activity
            index = (torch.arange(runs, device=g1.device).repeat_interleave(keep),
                     *torch.unravel_index(rows.reshape(-1), g1.shape[1:-1]))
            x, y = g1[index].view(runs, keep, -1), g2[index].view(runs, keep, -1)
            n = keep
        else:
            x, y = g1.reshape(runs, n, g1.shape[-1]), g2.reshape(runs, n, g2.shape[-1])
        perms, noise_x, noise_y = [], [], []
        for g in streams:
            perms.append(torch.randperm(n, generator=g, device=g.device))
            if self.cfg.noise_inside and self.cfg.noise_std > 0:
                noise_x.append(torch.randn(x.shape[1:], generator=g, dtype=x.dtype,
                                           device=g.device))
                noise_y.append(torch.randn(y.shape[1:], generator=g, dtype=y.dtype,
                                           device=g.device))
        perm = torch.stack(perms).to(x.device)
        if not noise_x:
            return Draw(x, y, perm, None, None)
        std = self.cfg.noise_std
        return Draw(x, y, perm, std * torch.stack(noise_x).to(x.device),
                    std * torch.stack(noise_y).to(y.device))

    def _inputs(self, draw: Draw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x̃, ỹ for the joint term, the y whose rows π shuffles for the marginal term)."""
        x = draw.x if draw.noise_x is None else draw.x + draw.noise_x
        y_joint = draw.y if draw.noise_y is None else draw.y + draw.noise_y
        y_marginal = draw.y if self.cfg.noise_asymmetric else y_joint
        return x, y_joint, y_marginal

    def estimate(self, draw: Draw) -> torch.Tensor:
        """Î in nats, (R,), for a given draw, with the first layer shared; the bound's terms
        (`dv_terms`, (R,) each) are left in `last_terms`."""
        x, y_joint, y_marginal = self._inputs(draw)
        t = self.statistics
        params = (t.dense_x.weight, t.dense_x.bias, t.dense_y.weight, t.dense_y.bias,
                  t.dense_hidden.weight, t.dense_hidden.bias, t.dense_out.weight,
                  t.dense_out.bias)
        inputs = (x, y_joint, y_marginal) + params
        keep = torch.is_grad_enabled() and any(v is not None and v.requires_grad for v in inputs)
        low = None if self.cfg.precision == "float32" else PRECISIONS[self.cfg.precision]
        return _SharedFirstLayerDV.apply(
            x, y_joint, y_marginal, draw.perm, *params, t.negative_slope,
            y_marginal is y_joint, self._workspace, keep, low, self.last_terms)

    def reference(self, draw: Draw) -> torch.Tensor:
        """Î (R,) as SPEC §4.2 states it: T(x̃, ỹ) and T(x̃, y_π), nothing shared (for tests)."""
        x, y_joint, y_marginal = self._inputs(draw)
        shuffled = torch.gather(y_marginal, 1, draw.perm.unsqueeze(-1).expand_as(y_marginal))
        return dv_bound(self.statistics(x, y_joint), self.statistics(x, shuffled))

    def forward(self, g1: torch.Tensor, g2: torch.Tensor,
                generators: Sequence[torch.Generator] | torch.Generator) -> torch.Tensor:
        """Î(G1; G2) in nats per run, (R,), differentiable in the critic and the activity.

        g1: (R, ..., dim_x) activity of G1, g2: (R, ..., dim_y) activity of G2, e.g.
        (R, batch, time, units); every (sequence, step) is a sample of its run.
        """
        return self.estimate(self.draw(g1, g2, generators))


def make_critic_optimizer(estimator: MineEstimator, cfg: EstimatorConfig,
                          eps_inside_sqrt: bool = True) -> torch.optim.Optimizer:
    """The critic's optimiser (SPEC §4.4): RMSprop ρ 0.9 (WM) or Adam (separation), lr and ε;
    `eps_inside_sqrt` places RMSprop's ε as `optim.RMSprop` describes. Both act element by
    element, so each run's update is its own."""
    return make_optimizer(estimator.parameters(), cfg.optimizer, cfg.lr, cfg.eps,
                          eps_inside_sqrt=eps_inside_sqrt)


def critic_step(estimator: MineEstimator, optimizer: torch.optim.Optimizer, g1: torch.Tensor,
                g2: torch.Tensor, generators: Sequence[torch.Generator] | torch.Generator,
                cfg: EstimatorConfig | None = None) -> np.ndarray:
    """One ascent step on Î (descent on −Σ_r Î_r) for every run, with the configured clipping.

    g1, g2: (R, ..., units) activity, used without gradient. Returns Î in nats per run, (R,),
    on this batch *before* the update.
    """
    optimizer.zero_grad(set_to_none=True)
    mi = estimator(g1.detach(), g2.detach(), generators)
    return ascend(estimator, optimizer, mi, cfg)


def ascend(estimator: MineEstimator, optimizer: torch.optim.Optimizer, mi: torch.Tensor,
           cfg: EstimatorConfig | None = None) -> np.ndarray:
    """Back-propagate −Σ_r Î_r, clip as `cfg` says (default: the estimator's own), step;
    returns Î (R,).

    Clipping, per run: per-tensor L2 norm `clip_norm`, then element-wise `clip_value`, each
    when set. Runs share no parameter, so each run's gradient is exactly its own.
    """
    cfg = estimator.cfg if cfg is None else cfg
    (-mi.sum()).backward()
    params = list(estimator.parameters())
    if cfg.clip_norm is not None:
        clip_per_tensor_norm(params, cfg.clip_norm)
    if cfg.clip_value is not None:
        clip_values(params, cfg.clip_value)
    optimizer.step()
    return mi.detach().cpu().numpy()
