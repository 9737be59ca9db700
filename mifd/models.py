"""The main models (SPEC §2): hidden activity, outputs and the two predefined groups.

* `LeakyRNN`: the leaky-integrator tanh RNN of the working-memory task (SPEC §2.1) for a
  *cohort* of R independent runs at once: every parameter carries a leading run axis and
  every per-step product is a batched product over the runs. Its hand-written BPTT
  (`LeakyIntegration`) matches autograd (to 1e-14 in float64). A single run is a cohort
  of one.
* `GRUNet`: the GRU with a linear readout of the separation task (SPEC §2.2) for a cohort,
  run by the fused loop of `mifd.gru` (equal to torch.nn.GRU; its BPTT is hand-written).
* `split_groups`: G1 and G2, the contiguous halves of the unit axis (SPEC §2.1, §10.20).
* `draw_noise`: standard-normal draws from a `torch.Generator`, for the state noise ξ and
  the initial state x₀ ~ N(0, I).

Shapes: R runs first, then batch-first, (R, batch, time, units), as the tasks produce
them; time is in steps.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .config import ModelConfig
from .gru import GRUIntegration, gru_loop, loop_arrays
from .workspace import Workspace


def draw_noise(generator: torch.Generator | None, shape: tuple[int, ...],
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard-normal draws of `shape` from `generator`: the state noise ξ (batch, time,
    units) or an initial state x₀ (batch, units). The model scales ξ by σ itself."""
    return torch.randn(shape, generator=generator, dtype=dtype)


def split_groups(activity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., N) -> the views (..., N/2) of G1 = units 0…N/2−1 and G2 = units N/2…N−1."""
    n_units = activity.shape[-1]
    if n_units % 2:
        raise ValueError(f"the unit axis must have even length (two groups), got {n_units}")
    half = n_units // 2
    return activity[..., :half], activity[..., half:]


def glorot_uniform(rows: int, cols: int, generator: torch.Generator | None) -> torch.Tensor:
    """(rows, cols) draws from U(−l, l), l = √(6 / (rows + cols)), in row-major order: Keras
    GlorotUniform for a kernel of either layout, since l depends only on fan_in + fan_out
    ((in, out) kernels here, torch's (out, in) weights in `mine`)."""
    limit = math.sqrt(6.0 / (rows + cols))
    return torch.empty(rows, cols).uniform_(-limit, limit, generator=generator)


def _integrate(inputs: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor,
               w_in: torch.Tensor, b: torch.Tensor, w_rec: torch.Tensor, alpha: float,
               sigma: float, buffers: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run x⁽ᵏ⁺¹⁾ = (1 − α)·x⁽ᵏ⁾ + α·tanh(x⁽ᵏ⁾) @ w_rec[r] + c_r[k] for k = 0…T−1 and every
    run r, with the drive c_r[k] = α·(u[k] @ w_in[r] + b[r]) + σ·ξ[k].

    inputs: (R, batch, T, n_in); noise: (R, batch, T, N) standard normal; x0: (R, batch, N);
    w_in (R, n_in, N), b (R, N), w_rec (R, N, N). Returns the states x⁽⁰⁾…x⁽ᵀ⁾ and the rates
    tanh(x⁽⁰⁾)…tanh(x⁽ᵀ⁾), each (T + 1, R, batch, N), time-major. With `buffers` (a dict
    kept by the caller) both live in arrays reused from call to call of the same shape: a
    fresh array of this size costs more to fault into memory than the loop's arithmetic.

    Each run's drive is one product over all its steps (into a scratch array), written with
    the noise into its column of the state buffer. A step is then
    one batched (R × (batch, N) @ (N, N)) product, so the loop is bound by the cost of
    launching kernels, whatever R: three in-place kernels on per-step views made once
    (indexing inside the loop would cost as much again).

    Threads: torch and MKL split even these small kernels over the intra-op threads. With
    2 threads and the other core free, that is ≈1.4× faster at batch 200 (no clear gain at
    batch 20); with 2 threads while another process holds the other core, each kernel waits
    ≈1 ms (instead of 4 µs) and the loop runs 10× slower or worse. So give each process one
    thread when several run at once.
    """
    runs, batch, n_steps, n_in = inputs.shape
    shape = (n_steps + 1, *x0.shape)
    if buffers is not None and buffers.get("shape") == (shape, x0.dtype, x0.device):
        states, rates, drive = buffers["states"], buffers["rates"], buffers["drive"]
    else:
        states, rates = x0.new_empty(shape), x0.new_empty(shape)
        drive = x0.new_empty((n_steps * batch, shape[-1]))
        if buffers is not None:
            buffers.update(shape=(shape, x0.dtype, x0.device), states=states, rates=rates,
                           drive=drive)
    states[0] = x0
    rows = inputs.transpose(1, 2).reshape(runs, n_steps * batch, n_in)
    for run in range(runs):
        torch.addmm(b[run], rows[run], w_in[run], beta=alpha, alpha=alpha, out=drive)
        torch.add(drive.view(n_steps, batch, -1), noise[run].transpose(0, 1), alpha=sigma,
                  out=states[1:, run])
    x, r = states.unbind(0), rates.unbind(0)
    for k in range(n_steps):
        torch.tanh(x[k], out=r[k])
        x[k + 1].add_(x[k], alpha=1.0 - alpha).baddbmm_(r[k], w_rec, alpha=alpha)
    torch.tanh(x[-1], out=r[-1])
    return states, rates


class LeakyIntegration(torch.autograd.Function):
    """Leaky tanh integration of R runs, (inputs, noise, x0, w_in, b, w_rec, α, σ) ->
    (states, rates), with the BPTT written by hand.

    Forward, for each run r independently (see `_integrate`):
    x⁽ᵏ⁺¹⁾ = (1 − α)·x⁽ᵏ⁾ + α·tanh(x⁽ᵏ⁾) @ w_rec[r] + c[k], c[k] = α·(u[k] @ w_in[r] + b[r]) + σ·ξ[k],
    k = 0…T−1. inputs (R, batch, T, n_in) and noise (R, batch, T, N) are data (no gradient);
    x0: (R, batch, N); w_in (R, n_in, N), b (R, N), w_rec (R, N, N), row-vector convention.
    Returns the states x⁽¹⁾…x⁽ᵀ⁾ and the rates tanh(x⁽¹⁾)…tanh(x⁽ᵀ⁾), each (T, R, batch, N).

    Backward: with gₓ⁽ᵏ⁾ and gᵣ⁽ᵏ⁾ the gradients arriving on x⁽ᵏ⁾ and tanh(x⁽ᵏ⁾), and
    d⁽ᵏ⁾ = 1 − tanh²(x⁽ᵏ⁾), the total adjoint λ⁽ᵏ⁾ = ∂L/∂x⁽ᵏ⁾ obeys
        λ⁽ᵏ⁾ = gₓ⁽ᵏ⁾ + d⁽ᵏ⁾ ⊙ gᵣ⁽ᵏ⁾ + (1 − α)·λ⁽ᵏ⁺¹⁾ + α·d⁽ᵏ⁾ ⊙ (λ⁽ᵏ⁺¹⁾ @ w_recᵀ)
    (the last two terms absent for k = T; gₓ⁽⁰⁾ = gᵣ⁽⁰⁾ = 0, giving ∂L/∂x0 = λ⁽⁰⁾). Then
    ∂L/∂c[k] = λ⁽ᵏ⁺¹⁾ and, per run in one batched product over all steps,
    ∂L/∂w_rec = α·Σₖ tanh(x⁽ᵏ⁾)ᵀ @ λ⁽ᵏ⁺¹⁾, ∂L/∂w_in = α·Σₖ u[k]ᵀ @ λ⁽ᵏ⁺¹⁾ and
    ∂L/∂b = α·Σₖ Σ_batch λ⁽ᵏ⁺¹⁾. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor,
                w_in: torch.Tensor, b: torch.Tensor, w_rec: torch.Tensor, alpha: float,
                sigma: float, buffers: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        states, rates = _integrate(inputs, noise, x0, w_in, b, w_rec, alpha, sigma, buffers)
        ctx.save_for_backward(inputs, rates, w_rec)
        ctx.alpha = alpha
        ctx.set_materialize_grads(False)
        return states[1:], rates[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: torch.Tensor | None, grad_rates: torch.Tensor | None):
        inputs, rates, w_rec = ctx.saved_tensors
        alpha = ctx.alpha
        deriv = rates.square().neg_().add_(1.0)  # d⁽ᵏ⁾ = 1 − tanh²(x⁽ᵏ⁾), k = 0…T
        # adjoint[k] = λ⁽ᵏ⁺¹⁾, holding the arriving gradients before the loop
        if grad_states is None:
            adjoint = torch.zeros_like(rates[1:])
        else:
            adjoint = grad_states.clone(memory_format=torch.contiguous_format)
        if grad_rates is not None:
            adjoint.addcmul_(grad_rates, deriv[1:])
        lam, d = adjoint.unbind(0), deriv.unbind(0)
        w_rec_t = w_rec.transpose(1, 2)
        for k in range(len(lam) - 1, 0, -1):
            lam[k - 1].add_(lam[k], alpha=1.0 - alpha)
            lam[k - 1].addcmul_(torch.bmm(lam[k], w_rec_t), d[k], value=alpha)
        grad_x0 = torch.addcmul(lam[0] * (1.0 - alpha), torch.bmm(lam[0], w_rec_t), d[0],
                                value=alpha)
        grad_drive = _run_rows(adjoint)  # (R, T·batch, N), time-major rows
        grad_w_rec = torch.bmm(_run_rows(rates[:-1]).transpose(1, 2), grad_drive)
        input_rows = inputs.transpose(1, 2).reshape(inputs.shape[0], -1, inputs.shape[-1])
        grad_w_in = torch.bmm(input_rows.transpose(1, 2), grad_drive)
        grad_b = grad_drive.sum(1)
        return (None, None, grad_x0, grad_w_in.mul_(alpha), grad_b.mul_(alpha),
                grad_w_rec.mul_(alpha), None, None, None)


def _run_rows(time_major: torch.Tensor) -> torch.Tensor:
    """(T, R, batch, n) -> (R, T·batch, n): each run's rows in time-major order (a copy)."""
    return time_major.transpose(0, 1).reshape(time_major.shape[1], -1, time_major.shape[-1])


def per_run_generators(
        generators: Sequence[torch.Generator | None] | torch.Generator | None,
) -> list[torch.Generator | None]:
    """One generator per run: a sequence as given, or a single generator (or None) as a
    cohort of one."""
    if generators is None or isinstance(generators, torch.Generator):
        return [generators]
    return list(generators)


class LeakyRNN(nn.Module):
    """Leaky-integrator tanh RNNs with linear readouts (SPEC §2.1), one per run of a cohort,
    paper row-vector convention. For run r:

    x_t = (1 − α)·x_{t−1} + α·(u_t @ w_in[r] + b[r] + tanh(x_{t−1}) @ w_rec[r]) + σ·ξ_t,
    z_t = tanh(x_t) @ w_out[r] + b_out[r]  (from the updated state, so z_t already depends on u_t)

    ξ_t ~ N(0, I). The noise is added outside the α factor: its std on x per step is σ.
    Parameters, each with the leading run axis R: w_in (R, n_in, N), b (R, N), w_rec (R, N, N)
    with w_rec[r, i, j] the weight from unit i to unit j, w_out (R, N, n_out), b_out (R, n_out).
    There is no global feedback matrix (SPEC §2.1 [rec]).
    """

    def __init__(self, cfg: ModelConfig, n_in: int = 4, n_out: int = 2,
                 generators: Sequence[torch.Generator | None] | torch.Generator | None = None):
        """Keras initialisation for each run, drawn from that run's generator in the order
        w_in, w_rec, w_out: w_in and w_out Glorot-uniform, w_rec i.i.d. N(0, (gain/√N)²),
        biases zero. `generators`: one per run (a single generator or None: one run)."""
        super().__init__()
        if cfg.kind != "leaky_rnn":
            raise ValueError(f"LeakyRNN needs ModelConfig.kind 'leaky_rnn', got {cfg.kind!r}")
        generators = per_run_generators(generators)
        n_units = cfg.n_units
        self.n_units, self.n_in, self.n_out = n_units, n_in, n_out
        self.alpha = cfg.alpha
        self.noise_std = cfg.noise_std
        w_in, w_rec, w_out = [], [], []
        for g in generators:
            w_in.append(glorot_uniform(n_in, n_units, g))
            scale = cfg.gain / math.sqrt(n_units)
            w_rec.append(torch.randn(n_units, n_units, generator=g) * scale)
            w_out.append(glorot_uniform(n_units, n_out, g))
        runs = len(generators)
        self.w_in = nn.Parameter(torch.stack(w_in))
        self.b = nn.Parameter(torch.zeros(runs, n_units))
        self.w_rec = nn.Parameter(torch.stack(w_rec))
        self.w_out = nn.Parameter(torch.stack(w_out))
        self.b_out = nn.Parameter(torch.zeros(runs, n_out))
        self._scratch: dict[int, dict] = {}  # reused state arrays by number of steps

    @property
    def runs(self) -> int:
        """R, the number of runs of the cohort."""
        return self.w_rec.shape[0]

    @property
    def groups(self) -> tuple[slice, slice]:
        """Unit slices of G1 (0…N/2−1) and G2 (N/2…N−1)."""
        half = self.n_units // 2
        return slice(0, half), slice(half, self.n_units)

    def run(self, inputs: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
            reuse_buffers: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Run T steps from x0, every run with its own parameters, without the readout.

        inputs: (R, batch, T, n_in); x0: (R, batch, N); noise: (R, batch, T, N), the
        standard-normal ξ (scaled by σ here). Returns the states x = x⁽¹⁾…x⁽ᵀ⁾ and the rates
        r = tanh(x), each (R, batch, T, N), views of time-major tensors, both carrying
        gradient to every parameter and to x0. `reuse_buffers` (without gradient only): they
        are views of arrays the model keeps and overwrites at its next such call of the
        same number of steps.
        """
        if reuse_buffers and torch.is_grad_enabled():
            raise ValueError("reuse_buffers is for calls without gradient")
        buffers = self._scratch.setdefault(inputs.shape[2], {}) if reuse_buffers else None
        states, rates = LeakyIntegration.apply(inputs, noise, x0, self.w_in, self.b,
                                               self.w_rec, self.alpha, self.noise_std, buffers)
        return states.permute(1, 2, 0, 3), rates.permute(1, 2, 0, 3)

    def forward_with_rates(self, inputs: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`run`, and the outputs z = tanh(x) @ w_out + b_out (R, batch, T, n_out) read from
        every updated state, so z[:, :, k] is read from x⁽ᵏ⁺¹⁾. Returns (x, r, z); a loss
        may use any of them (e.g. an MI term on the groups of r)."""
        states, rates = self.run(inputs, x0, noise)
        outputs = torch.matmul(rates.permute(2, 0, 1, 3), self.w_out) + self.b_out.unsqueeze(1)
        return states, rates, outputs.permute(1, 2, 0, 3)

    def forward(self, inputs: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The states x (R, batch, T, N) and outputs z (R, batch, T, n_out) of
        `forward_with_rates`; that method also returns tanh(x), computed in the loop
        already, which saves one tanh over the states where the loss needs the rates."""
        states, _, outputs = self.forward_with_rates(inputs, x0, noise)
        return states, outputs

    @torch.no_grad()
    def run_transient(self, inputs: torch.Tensor, x0: torch.Tensor,
                      noise: torch.Tensor) -> torch.Tensor:
        """The same dynamics without gradient, for the unscored transient, in buffers the
        model reuses; returns only the final state x⁽ᵀ⁾ (R, batch, N), a copy. Arguments as
        in `forward_with_rates`."""
        buffers = self._scratch.setdefault(inputs.shape[2], {})
        states, _ = _integrate(inputs, noise, x0, self.w_in, self.b, self.w_rec, self.alpha,
                               self.noise_std, buffers)
        return states[-1].clone()


class GRUNet(nn.Module):
    """GRUs with linear readouts for the separation task (SPEC §2.2), one per run of a
    cohort. For run r, per step from h₀ = 0 (torch.nn.GRU's convention, which is Keras's
    reset_after=True):
        z = σ(W_z u + b_z + U_z h + b'_z),  r = σ(W_r u + b_r + U_r h + b'_r)
        ĥ = tanh(W_h u + b_h + r ⊙ (U_h h + b'_h)),  h ← z ⊙ h + (1 − z) ⊙ ĥ
        y = W_out h + c
    computed by the fused loop of `mifd.gru`. Parameters, each with the leading run axis R
    and torch.nn.GRU's per-run layout, gate blocks in the order [r, z, n]: weight_ih (R, 3N,
    n_in), weight_hh (R, 3N, N) (rows 0…N−1 U_r, N…2N−1 U_z, 2N…3N−1 U_h, the candidate
    block), bias_ih and bias_hh (R, 3N), weight_out (R, n_out, N), bias_out (R, n_out).
    """

    def __init__(self, cfg: ModelConfig, n_in: int = 3, n_out: int = 6,
                 generators: Sequence[torch.Generator | None] | torch.Generator | None = None):
        """Keras initialisation for each run, drawn from that run's generator in the order
        below: the input kernel Glorot-uniform over all three gates together, the recurrent
        kernel orthogonal over all three, the readout Glorot-uniform, every bias zero.
        `generators`: one per run (a single generator or None: one run)."""
        super().__init__()
        if cfg.kind != "gru":
            raise ValueError(f"GRUNet needs ModelConfig.kind 'gru', got {cfg.kind!r}")
        generators = per_run_generators(generators)
        n = cfg.n_units
        self.n_units, self.n_in, self.n_out = n, n_in, n_out
        w_ih, w_hh, w_out = [], [], []
        for g in generators:
            w_ih.append(glorot_uniform(n_in, 3 * n, g).T)
            w_hh.append(nn.init.orthogonal_(torch.empty(3 * n, n), generator=g))
            w_out.append(glorot_uniform(n, n_out, g).T)
        runs = len(generators)
        self.weight_ih = nn.Parameter(torch.stack(w_ih))
        self.weight_hh = nn.Parameter(torch.stack(w_hh))
        self.bias_ih = nn.Parameter(torch.zeros(runs, 3 * n))
        self.bias_hh = nn.Parameter(torch.zeros(runs, 3 * n))
        self.weight_out = nn.Parameter(torch.stack(w_out))
        self.bias_out = nn.Parameter(torch.zeros(runs, n_out))
        self._scratch: dict = {}  # the no-gradient loop's arrays, reused on request
        self._workspaces = (Workspace(), Workspace())  # the forward's and backward's arrays

    @property
    def runs(self) -> int:
        """R, the number of runs of the cohort."""
        return self.weight_hh.shape[0]

    def recurrent_block(self, gate: str, run: int = 0) -> torch.Tensor:
        """U_r, U_z or U_h (gate "r", "z" or "h") of one run as an (N, N) tensor, row =
        postsynaptic."""
        index = "rzh".index(gate)
        return self.weight_hh[run, index * self.n_units:(index + 1) * self.n_units]

    def hidden(self, inputs: torch.Tensor, reuse_buffers: bool = False) -> torch.Tensor:
        """inputs (R, batch, T, n_in) → hidden states h_1…h_T (R, batch, T, N), a permuted
        view of a time-major, unit-major array. `reuse_buffers` (without gradient only): the
        array is one the model keeps and overwrites at its next such call."""
        h0 = inputs.new_zeros((self.runs, inputs.shape[1], self.n_units))
        params = (self.weight_ih, self.bias_ih, self.weight_hh, self.bias_hh)
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            if reuse_buffers:
                raise ValueError("reuse_buffers is for calls without gradient")
            states = GRUIntegration.apply(inputs, h0, *params, self._workspaces)
        else:
            key = (tuple(inputs.shape), self.n_units, h0.dtype, h0.device)
            if not reuse_buffers:
                arrays = loop_arrays(inputs.shape, self.n_units, False, h0)
            else:
                if self._scratch.get("key") != key:
                    self._scratch = {**loop_arrays(inputs.shape, self.n_units, False, h0),
                                     "key": key}
                arrays = self._scratch
            w_ih, b_ih, w_hh, b_hh = (p.detach() for p in params)
            gru_loop(inputs, h0, w_ih, b_ih, w_hh, b_hh, arrays)
            states = arrays["states"][1:]
        return states.permute(1, 3, 0, 2)

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """h (R, batch, T, N) → outputs y = h @ W_outᵀ + c (R, batch, T, n_out)."""
        runs, batch, n_steps, n = h.shape
        y = torch.baddbmm(self.bias_out.unsqueeze(1), h.reshape(runs, -1, n),
                          self.weight_out.transpose(1, 2))
        return y.view(runs, batch, n_steps, -1)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (R, batch, T, n_in) → hidden states h (R, batch, T, N) and outputs y (R,
        batch, T, n_out)."""
        h = self.hidden(inputs)
        return h, self.readout(h)


# Parameter names of the GRUNet before the fused GRU (one run, torch.nn.GRU's names), as
# older separation records store them: {old name: current name}.
GRU_LEGACY_NAMES = {"gru.weight_ih_l0": "weight_ih", "gru.weight_hh_l0": "weight_hh",
                    "gru.bias_ih_l0": "bias_ih", "gru.bias_hh_l0": "bias_hh",
                    "readout.weight": "weight_out", "readout.bias": "bias_out"}
