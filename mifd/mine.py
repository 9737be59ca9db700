"""MINE: the Donsker–Varadhan estimate of I(G1; G2) and its statistics network (SPEC §4).

* `dv_bound`: the minibatch Donsker–Varadhan bound from joint and marginal critic scores,
  mean(T_joint) − (logsumexp(T_marg) − log n), in nats.
* `StatisticsNetwork`: T(x, y) = Dense₁(act(Dense_H(act(Dense_Hˣ(x) + Dense_Hʸ(y))))),
  ReLU and width 512 for working memory, LeakyReLU 0.25, width 100 and no output bias for
  separation, with Keras initialisation (Glorot-uniform kernels, zero biases).
* `MineEstimator`: flattens the two groups' activity into samples, draws the marginal pairs
  by one permutation of the G2 rows, adds the task's input noise and returns Î in nats,
  differentiable with respect to the critic and to the activity. The two terms share the
  first layer and run as one stacked batch with a hand-written backward that works in
  arrays reused from call to call (`_SharedFirstLayerDV`); `MineEstimator.reference` is
  the plain autograd form it is tested against.
* `make_critic_optimizer`, `critic_step`: the critic's own optimiser and one ascent step on Î
  with the task's gradient clipping (SPEC §4.4).

All randomness (initial weights, row subsets, permutations, noise) is drawn from
`torch.Generator` objects passed in, so a run is reproduced by its seeds.
"""
from __future__ import annotations

import math
import weakref
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import EstimatorConfig
from .optim import clip_per_tensor_norm, clip_values, make_optimizer


def dv_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> torch.Tensor:
    """Donsker–Varadhan bound mean(T_joint) − log mean(exp T_marg), in nats (SPEC §4.1).

    t_joint: (n,) critic scores of the joint pairs; t_marginal: (m,) scores of the marginal
    pairs. The log-mean-exp is computed as logsumexp(T_marg) − log m, which stays finite for
    scores of any size. Returns a scalar tensor.
    """
    n_marginal = t_marginal.numel()
    log_mean_exp = torch.logsumexp(t_marginal.reshape(-1), dim=0) - math.log(n_marginal)
    return t_joint.mean() - log_mean_exp


def _glorot_uniform_(linear: nn.Linear, generator: torch.Generator | None) -> None:
    """Keras defaults: kernel ~ U(±√(6 / (fan_in + fan_out))), bias = 0."""
    with torch.no_grad():
        nn.init.xavier_uniform_(linear.weight, generator=generator)
        if linear.bias is not None:
            linear.bias.zero_()


class StatisticsNetwork(nn.Module):
    """The critic T(x, y) of SPEC §4.3, with separate first layers for the two groups.

    T(x, y) = Dense₁(act(Dense_H(act(Dense_Hˣ(x) + Dense_Hʸ(y))))). Both first layers and the
    hidden layer have biases; the output layer has one when `cfg.output_bias`. `act` is ReLU
    (`cfg.activation == "relu"`) or LeakyReLU with slope `cfg.negative_slope`.

    `head` is everything after the first layers, so that forward(x, y) ==
    head(dense_x(x) + dense_y(y)).
    """

    def __init__(self, dim_x: int, dim_y: int, cfg: EstimatorConfig,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.dense_x = nn.Linear(dim_x, cfg.hidden)
        self.dense_y = nn.Linear(dim_y, cfg.hidden)
        self.dense_hidden = nn.Linear(cfg.hidden, cfg.hidden)
        self.dense_out = nn.Linear(cfg.hidden, 1, bias=cfg.output_bias)
        self.negative_slope = cfg.negative_slope if cfg.activation == "leaky_relu" else None
        for layer in (self.dense_x, self.dense_y, self.dense_hidden, self.dense_out):
            _glorot_uniform_(layer, generator)

    def activation(self, z: torch.Tensor) -> torch.Tensor:
        if self.negative_slope is None:
            return F.relu(z)
        return F.leaky_relu(z, self.negative_slope)

    def head(self, pre: torch.Tensor) -> torch.Tensor:
        """Everything after the first layers: (n, hidden) pre-activations → (n,) scores."""
        hidden = self.activation(self.dense_hidden(self.activation(pre)))
        return self.dense_out(hidden).squeeze(-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Scores T(x_i, y_i): x (n, dim_x), y (n, dim_y) → (n,)."""
        return self.head(self.dense_x(x) + self.dense_y(y))


def _rows(activity: torch.Tensor) -> torch.Tensor:
    """(batch, time, units), or any (..., units), → (samples, units)."""
    return activity.reshape(-1, activity.shape[-1])


class _Lease:
    """Held by the autograd graph of one forward: while it lives, its arrays are in use."""


class _Workspace:
    """Four reusable (2n, hidden) arrays for `_SharedFirstLayerDV`.

    A fresh array of this size costs more to fault into memory than the arithmetic done on
    it, so the arrays are kept from call to call. Each forward takes a lease on them; the
    lease lives in the autograd graph (or dies with the forward when no backward can
    follow), and while a graph still holds it the next forward gets new arrays instead.
    """

    def __init__(self):
        self._arrays: tuple[torch.Tensor, ...] | None = None
        self._lease: weakref.ref | None = None

    def take(self, rows: int, cols: int, like: torch.Tensor
             ) -> tuple[tuple[torch.Tensor, ...], _Lease]:
        lease = _Lease()
        if self._lease is not None and self._lease() is not None:
            return self._new(rows, cols, like), lease
        arrays = self._arrays
        if (arrays is None or arrays[0].shape != (rows, cols) or arrays[0].dtype != like.dtype
                or arrays[0].device != like.device):
            self._arrays = self._new(rows, cols, like)
        self._lease = weakref.ref(lease)
        return self._arrays, lease

    @staticmethod
    def _new(rows: int, cols: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(like.new_empty((rows, cols)) for _ in range(4))


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


def _column_sums(a: torch.Tensor) -> torch.Tensor:
    """a.sum(0) for a tall (rows, cols) array, as a matrix-vector product (about twice as fast)."""
    return torch.mv(a.T, a.new_ones(a.shape[0]))


class _SharedFirstLayerDV(torch.autograd.Function):
    """Î = dv_bound(T(x, y_joint), T(x, y_marginal[perm])) with a hand-written backward.

    Row i < n of the (2n, hidden) arrays is the joint pair i, row n + i the marginal pair
    (x_i, y_marginal[perm[i]]). Dense_Hˣ(x) is computed once for both halves, the marginal
    half's Dense_Hʸ rows are a permutation of one product y_marginal·W_yᵀ (shared with the
    joint half when `shared`, i.e. y_joint is y_marginal), and the hidden layer is one
    (2n, hidden) product. The activations are kept in two workspace arrays and the backward
    works in the other two, so it may run more than once.
    """

    @staticmethod
    def forward(ctx, x, y_joint, y_marginal, perm, w_x, b_x, w_y, b_y, w_h, b_h, w_o, b_o,
                slope, shared, workspace, keep_for_backward):
        n = x.shape[0]
        (h1, h2, scratch, work), lease = workspace.take(2 * n, w_h.shape[0], x)
        torch.addmm(b_x + b_y, x, w_x.T, out=h1[:n])
        torch.mm(y_marginal, w_y.T, out=scratch[n:])
        torch.index_select(scratch[n:], 0, perm, out=scratch[:n])
        torch.add(h1[:n], scratch[:n], out=h1[n:])
        if shared:
            h1[:n].add_(scratch[n:])
        else:
            h1[:n].addmm_(y_joint, w_y.T)
        _activate_(h1, slope)
        torch.addmm(b_h, h1, w_h.T, out=h2)
        _activate_(h2, slope)
        t = h2 @ w_o[0]
        if b_o is not None:
            t = t + b_o
        if keep_for_backward:
            ctx.save_for_backward(x, y_joint, y_marginal, perm, w_x, w_y, w_h, w_o)
            ctx.arrays, ctx.lease, ctx.t = (h1, h2, scratch, work), lease, t
            ctx.slope, ctx.shared = slope, shared
        return dv_bound(t[:n], t[n:])

    @staticmethod
    def backward(ctx, grad_mi):
        x, y_joint, y_marginal, perm, w_x, w_y, w_h, w_o = ctx.saved_tensors
        (h1, h2, scratch, work), t, slope = ctx.arrays, ctx.t, ctx.slope
        needs = ctx.needs_input_grad
        n = x.shape[0]
        d_t = torch.cat((grad_mi.expand(n) / n, -grad_mi * torch.softmax(t[n:], dim=0)))
        g_w_o = (d_t @ h2)[None] if needs[10] else None
        g_b_o = d_t.sum(0, keepdim=True) if needs[11] else None
        delta2 = torch.mul(d_t[:, None], w_o, out=work)
        _activation_backward_(delta2, h2, slope)
        g_w_h = delta2.T @ h1 if needs[8] else None
        g_b_h = _column_sums(delta2) if needs[9] else None
        delta1 = torch.mm(delta2, w_h, out=scratch)
        _activation_backward_(delta1, h1, slope)
        d_joint, d_marginal = delta1[:n], delta1[n:]
        # The marginal rows' gradient, moved back to the rows of y_marginal they were read from.
        inverse = torch.empty_like(perm).scatter_(0, perm, torch.arange(n, device=perm.device))
        d_unshuffled = torch.index_select(d_marginal, 0, inverse, out=work[:n])
        g_w_y = g_y_joint = g_y_marginal = None
        if ctx.shared:
            d_y = d_unshuffled.add_(d_joint)
            g_w_y = d_y.T @ y_joint if needs[6] else None
            g_y_joint = d_y @ w_y if needs[1] else None
        else:
            g_w_y = (torch.addmm(d_joint.T @ y_joint, d_unshuffled.T, y_marginal)
                     if needs[6] else None)
            g_y_joint = d_joint @ w_y if needs[1] else None
            g_y_marginal = d_unshuffled @ w_y if needs[2] else None
        both = d_joint.add_(d_marginal)
        g_w_x = both.T @ x if needs[4] else None
        g_b = _column_sums(both)
        g_x = both @ w_x if needs[0] else None
        return (g_x, g_y_joint, g_y_marginal, None, g_w_x, g_b if needs[5] else None, g_w_y,
                g_b.clone() if needs[7] else None, g_w_h, g_b_h, g_w_o, g_b_o,
                None, None, None, None)


class Draw(NamedTuple):
    """The random part of one estimator call, all (n, ·) rows of one sample set.

    x: (n, dim_x) G1 samples; y: (n, dim_y) G2 samples; perm: (n,) permutation giving the
    marginal pairs (x_i, y_perm[i]); noise_x, noise_y: the input noise added inside the
    estimator, or None.
    """

    x: torch.Tensor
    y: torch.Tensor
    perm: torch.Tensor
    noise_x: torch.Tensor | None
    noise_y: torch.Tensor | None


class MineEstimator(nn.Module):
    """Î(G1; G2) in nats from two groups' activity (SPEC §4.1–4.3).

    Every call, in this order of draws from the generator passed in:
    1. when `cfg.sample_fraction < 1`, a random subset of round(fraction·n) sample rows
       (the same rows of both groups, so pairs stay pairs);
    2. one permutation π of all remaining G2 rows, giving the marginal pairs (x_i, y_π(i));
    3. when `cfg.noise_inside`, Gaussian noise of std `cfg.noise_std` on x (both terms) and
       on the joint term's y. With `cfg.noise_asymmetric` (working memory) the marginal
       term's y is the shuffled y taken *before* the noise, so noise-free; without it the
       marginal y is the shuffled noisy y. With `noise_inside` off (separation) the caller
       adds the noise to the activity and the estimator adds none.

    The estimate is computed with the first layer shared between the joint and marginal
    terms and both terms stacked into one batch (`_SharedFirstLayerDV`); `reference` is the
    same quantity computed as SPEC §4.2 states it, and the two agree to float rounding.
    """

    def __init__(self, dim_x: int, dim_y: int, cfg: EstimatorConfig,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.statistics = StatisticsNetwork(dim_x, dim_y, cfg, generator=generator)
        self._workspace = _Workspace()

    def draw(self, g1: torch.Tensor, g2: torch.Tensor, generator: torch.Generator) -> Draw:
        """Flatten g1, g2 ((batch, time, units) each) into samples and draw subset, π, noise."""
        x, y = _rows(g1), _rows(g2)
        n = x.shape[0]
        if y.shape[0] != n:
            raise ValueError(f"the groups have {n} and {y.shape[0]} samples")
        if self.cfg.sample_fraction < 1:
            keep = max(1, round(self.cfg.sample_fraction * n))
            rows = torch.randperm(n, generator=generator, device=generator.device)[:keep]
            rows = rows.to(x.device)
            x, y, n = x[rows], y[rows], keep
        perm = torch.randperm(n, generator=generator, device=generator.device).to(x.device)
        if not (self.cfg.noise_inside and self.cfg.noise_std > 0):
            return Draw(x, y, perm, None, None)
        noise_x, noise_y = (
            self.cfg.noise_std * torch.randn(v.shape, generator=generator, dtype=v.dtype,
                                             device=generator.device).to(v.device)
            for v in (x, y)
        )
        return Draw(x, y, perm, noise_x, noise_y)

    def _inputs(self, draw: Draw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x̃, ỹ for the joint term, the y whose rows π shuffles for the marginal term)."""
        x = draw.x if draw.noise_x is None else draw.x + draw.noise_x
        y_joint = draw.y if draw.noise_y is None else draw.y + draw.noise_y
        y_marginal = draw.y if self.cfg.noise_asymmetric else y_joint
        return x, y_joint, y_marginal

    def estimate(self, draw: Draw) -> torch.Tensor:
        """Î in nats (scalar) for a given draw, with the first layer shared."""
        x, y_joint, y_marginal = self._inputs(draw)
        t = self.statistics
        b_o = t.dense_out.bias
        params = (t.dense_x.weight, t.dense_x.bias, t.dense_y.weight, t.dense_y.bias,
                  t.dense_hidden.weight, t.dense_hidden.bias, t.dense_out.weight, b_o)
        inputs = (x, y_joint, y_marginal) + params
        keep = torch.is_grad_enabled() and any(v is not None and v.requires_grad for v in inputs)
        return _SharedFirstLayerDV.apply(
            x, y_joint, y_marginal, draw.perm, *params, t.negative_slope,
            y_marginal is y_joint, self._workspace, keep)

    def reference(self, draw: Draw) -> torch.Tensor:
        """Î as SPEC §4.2 states it: T(x̃, ỹ) and T(x̃, y_π), nothing shared (for tests)."""
        x, y_joint, y_marginal = self._inputs(draw)
        return dv_bound(self.statistics(x, y_joint),
                        self.statistics(x, y_marginal[draw.perm]))

    def forward(self, g1: torch.Tensor, g2: torch.Tensor, generator: torch.Generator
                ) -> torch.Tensor:
        """Î(G1; G2) in nats, a scalar tensor differentiable in the critic and the activity.

        g1: (batch, time, dim_x) activity of G1, g2: (batch, time, dim_y) activity of G2 (any
        leading shape with the same number of samples); every (sequence, step) is a sample.
        """
        return self.estimate(self.draw(g1, g2, generator))


def make_critic_optimizer(estimator: MineEstimator, cfg: EstimatorConfig,
                          eps_inside_sqrt: bool = True) -> torch.optim.Optimizer:
    """The critic's optimiser (SPEC §4.4): RMSprop ρ 0.9 (WM) or Adam (separation), lr and ε;
    `eps_inside_sqrt` places RMSprop's ε as `optim.RMSprop` describes."""
    return make_optimizer(estimator.parameters(), cfg.optimizer, cfg.lr, cfg.eps,
                          eps_inside_sqrt=eps_inside_sqrt)


def critic_step(estimator: MineEstimator, optimizer: torch.optim.Optimizer, g1: torch.Tensor,
                g2: torch.Tensor, generator: torch.Generator,
                cfg: EstimatorConfig | None = None) -> float:
    """One ascent step on Î (descent on −Î) with the configured clipping.

    g1, g2: (batch, time, units) activity, used without gradient. Returns Î in nats on this
    batch *before* the update.
    """
    optimizer.zero_grad(set_to_none=True)
    mi = estimator(g1.detach(), g2.detach(), generator)
    return ascend(estimator, optimizer, mi, cfg)


def ascend(estimator: MineEstimator, optimizer: torch.optim.Optimizer, mi: torch.Tensor,
           cfg: EstimatorConfig | None = None) -> float:
    """Back-propagate −Î, clip as `cfg` says (default: the estimator's own), step; returns Î.

    Clipping: per-tensor L2 norm `clip_norm`, then element-wise `clip_value`, each when set.
    """
    cfg = estimator.cfg if cfg is None else cfg
    (-mi).backward()
    params = list(estimator.parameters())
    if cfg.clip_norm is not None:
        clip_per_tensor_norm(params, cfg.clip_norm)
    if cfg.clip_value is not None:
        clip_values(params, cfg.clip_value)
    optimizer.step()
    return mi.item()
