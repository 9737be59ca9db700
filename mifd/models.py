"""The main models (SPEC §2): hidden activity, outputs and the two predefined groups.

* `LeakyRNN`: the leaky-integrator tanh RNN of the working-memory task (SPEC §2.1), with a
  hand-written BPTT (`LeakyIntegration`) that matches autograd (to 1e-14 in float64) and
  runs an epoch's transient + 2000-step BPTT ≈4× faster than an autograd loop and ≈2×
  faster than autograd on a precomputed drive (benchmarks/bench_rnn.py).
* `split_groups`: G1 and G2, the contiguous halves of the unit axis (SPEC §2.1, §10.20).
* `draw_noise`: standard-normal draws from a `torch.Generator`, for the state noise ξ and
  the initial state x₀ ~ N(0, I).

Shapes are batch-first, (batch, time, units), as the tasks produce them; time is in steps.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .config import ModelConfig


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


def _glorot_uniform(fan_in: int, fan_out: int, generator: torch.Generator | None) -> torch.Tensor:
    """(fan_in, fan_out) draws from U(−l, l), l = √(6 / (fan_in + fan_out)), Keras GlorotUniform."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(fan_in, fan_out).uniform_(-limit, limit, generator=generator)


def _integrate(drive: torch.Tensor, x0: torch.Tensor, w_rec: torch.Tensor,
               alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Run x⁽ᵏ⁺¹⁾ = (1 − α)·x⁽ᵏ⁾ + α·tanh(x⁽ᵏ⁾) @ w_rec + drive[k] for k = 0…T−1.

    drive: (T, batch, N), time-major; x0: (batch, N); w_rec: (N, N). Returns the states
    x⁽⁰⁾…x⁽ᵀ⁾ and the rates tanh(x⁽⁰⁾)…tanh(x⁽ᵀ⁾), each (T + 1, batch, N). A step is a
    (batch, N) @ (N, N) product, so the loop is bound by the cost of launching kernels: the
    drive is copied into the state buffer at once, each step then runs three in-place
    kernels on per-step views made once (indexing inside the loop would cost as much again).

    Threads: torch and MKL split even these small kernels over the intra-op threads. With
    2 threads and the other core free, that is ≈1.4× faster at batch 200 (no clear gain at
    batch 20); with 2 threads while another process holds the other core, each kernel waits
    ≈1 ms (instead of 4 µs) and the loop runs 10× slower or worse. So give each process one
    thread when several run at once.
    """
    states = x0.new_empty((drive.shape[0] + 1, *x0.shape))
    rates = torch.empty_like(states)
    states[0] = x0
    states[1:] = drive
    x, r = states.unbind(0), rates.unbind(0)
    for k in range(drive.shape[0]):
        torch.tanh(x[k], out=r[k])
        x[k + 1].add_(x[k], alpha=1.0 - alpha).addmm_(r[k], w_rec, alpha=alpha)
    torch.tanh(x[-1], out=r[-1])
    return states, rates


class LeakyIntegration(torch.autograd.Function):
    """Leaky tanh integration (drive, x0, w_rec, α) -> (states, rates), BPTT written by hand.

    Forward: x⁽ᵏ⁺¹⁾ = (1 − α)·x⁽ᵏ⁾ + α·tanh(x⁽ᵏ⁾) @ w_rec + c[k], k = 0…T−1, where the drive
    c = α·(u @ w_in + b) + σ·ξ holds every term that does not depend on the state.
    drive: (T, batch, N) time-major; x0: (batch, N); w_rec: (N, N), row-vector convention.
    Returns the states x⁽¹⁾…x⁽ᵀ⁾ and the rates tanh(x⁽¹⁾)…tanh(x⁽ᵀ⁾), each (T, batch, N).

    Backward: with gₓ⁽ᵏ⁾ and gᵣ⁽ᵏ⁾ the gradients arriving on x⁽ᵏ⁾ and tanh(x⁽ᵏ⁾), and
    d⁽ᵏ⁾ = 1 − tanh²(x⁽ᵏ⁾), the total adjoint λ⁽ᵏ⁾ = ∂L/∂x⁽ᵏ⁾ obeys
        λ⁽ᵏ⁾ = gₓ⁽ᵏ⁾ + d⁽ᵏ⁾ ⊙ gᵣ⁽ᵏ⁾ + (1 − α)·λ⁽ᵏ⁺¹⁾ + α·d⁽ᵏ⁾ ⊙ (λ⁽ᵏ⁺¹⁾ @ w_recᵀ)
    (the last two terms absent for k = T; gₓ⁽⁰⁾ = gᵣ⁽⁰⁾ = 0, giving ∂L/∂x0 = λ⁽⁰⁾). Then
    ∂L/∂c[k] = λ⁽ᵏ⁺¹⁾ and, in one product over all steps, ∂L/∂w_rec = α·Σₖ tanh(x⁽ᵏ⁾)ᵀ @ λ⁽ᵏ⁺¹⁾.
    Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, drive: torch.Tensor, x0: torch.Tensor, w_rec: torch.Tensor,
                alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
        states, rates = _integrate(drive, x0, w_rec, alpha)
        ctx.save_for_backward(rates, w_rec)
        ctx.alpha = alpha
        ctx.set_materialize_grads(False)
        return states[1:], rates[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states: torch.Tensor | None, grad_rates: torch.Tensor | None):
        rates, w_rec = ctx.saved_tensors
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
        w_rec_t = w_rec.t()
        for k in range(len(lam) - 1, 0, -1):
            lam[k - 1].add_(lam[k], alpha=1.0 - alpha)
            lam[k - 1].addcmul_(lam[k] @ w_rec_t, d[k], value=alpha)
        grad_x0 = torch.addcmul(lam[0] * (1.0 - alpha), lam[0] @ w_rec_t, d[0], value=alpha)
        n_units = w_rec.shape[0]
        grad_w_rec = rates[:-1].reshape(-1, n_units).t() @ adjoint.reshape(-1, n_units)
        return adjoint, grad_x0, grad_w_rec.mul_(alpha), None


class LeakyRNN(nn.Module):
    """Leaky-integrator tanh RNN with a linear readout (SPEC §2.1), paper row-vector convention.

    x_t = (1 − α)·x_{t−1} + α·(u_t @ w_in + b + tanh(x_{t−1}) @ w_rec) + σ·ξ_t,  ξ_t ~ N(0, I)
    z_t = tanh(x_t) @ w_out + b_out  (from the updated state, so z_t already depends on u_t)

    The noise is added outside the α factor: its std on x per step is σ. Parameters:
    w_in (n_in, N), b (N,), w_rec (N, N) with w_rec[i, j] the weight from unit i to unit j,
    w_out (N, n_out), b_out (n_out,). There is no global feedback matrix (SPEC §2.1 [rec]).
    """

    def __init__(self, cfg: ModelConfig, n_in: int = 4, n_out: int = 2,
                 generator: torch.Generator | None = None):
        """Keras initialisation, drawn from `generator` in the order w_in, w_rec, w_out:
        w_in and w_out Glorot-uniform, w_rec i.i.d. N(0, (gain/√N)²), biases zero."""
        super().__init__()
        if cfg.kind != "leaky_rnn":
            raise ValueError(f"LeakyRNN needs ModelConfig.kind 'leaky_rnn', got {cfg.kind!r}")
        n_units = cfg.n_units
        self.n_units, self.n_in, self.n_out = n_units, n_in, n_out
        self.alpha = cfg.alpha
        self.noise_std = cfg.noise_std
        self.w_in = nn.Parameter(_glorot_uniform(n_in, n_units, generator))
        self.b = nn.Parameter(torch.zeros(n_units))
        w_rec = torch.randn(n_units, n_units, generator=generator) * (cfg.gain / math.sqrt(n_units))
        self.w_rec = nn.Parameter(w_rec)
        self.w_out = nn.Parameter(_glorot_uniform(n_units, n_out, generator))
        self.b_out = nn.Parameter(torch.zeros(n_out))

    @property
    def groups(self) -> tuple[slice, slice]:
        """Unit slices of G1 (0…N/2−1) and G2 (N/2…N−1)."""
        half = self.n_units // 2
        return slice(0, half), slice(half, self.n_units)

    def _drive(self, inputs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """(batch, T, n_in), (batch, T, N) -> the drive α·(u @ w_in + b) + σ·ξ as (T, batch, N),
        in one product over all steps."""
        n_steps, batch = inputs.shape[1], inputs.shape[0]
        drive = torch.addmm(self.b, inputs.transpose(0, 1).reshape(-1, self.n_in), self.w_in,
                            beta=self.alpha, alpha=self.alpha)
        drive = drive.view(n_steps, batch, self.n_units)
        return drive.add_(noise.transpose(0, 1), alpha=self.noise_std)

    def forward_with_rates(self, inputs: torch.Tensor, x0: torch.Tensor,
                           noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run T steps from x0 and read out every updated state.

        inputs: (batch, T, n_in); x0: (batch, N); noise: (batch, T, N), the standard-normal
        ξ (scaled by σ here). Returns the states x = x⁽¹⁾…x⁽ᵀ⁾ (batch, T, N), the rates
        r = tanh(x) (batch, T, N) and the outputs z = r @ w_out + b_out (batch, T, n_out), so
        z[:, k] is read from x⁽ᵏ⁺¹⁾. All three carry gradient to every parameter and to x0,
        and a loss may use any of them (e.g. an MI term on the groups of r). They are
        batch-first views of time-major tensors, as `nn.RNN(batch_first=True)` returns them.
        """
        drive = self._drive(inputs, noise)
        states, rates = LeakyIntegration.apply(drive, x0, self.w_rec, self.alpha)
        outputs = torch.addmm(self.b_out, rates.view(-1, self.n_units), self.w_out)
        outputs = outputs.view(*rates.shape[:2], self.n_out)
        return states.transpose(0, 1), rates.transpose(0, 1), outputs.transpose(0, 1)

    def forward(self, inputs: torch.Tensor, x0: torch.Tensor,
                noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The states x (batch, T, N) and outputs z (batch, T, n_out) of `forward_with_rates`;
        that method also returns tanh(x), computed in the loop already, which saves one
        tanh over (batch, T, N) where the loss needs the rates."""
        states, _, outputs = self.forward_with_rates(inputs, x0, noise)
        return states, outputs

    @torch.no_grad()
    def run_transient(self, inputs: torch.Tensor, x0: torch.Tensor,
                      noise: torch.Tensor) -> torch.Tensor:
        """The same dynamics without gradient, for the unscored transient; returns only the
        final state x⁽ᵀ⁾ (batch, N). Arguments as in `forward_with_rates`."""
        states, _ = _integrate(self._drive(inputs, noise), x0, self.w_rec, self.alpha)
        return states[-1]


class GRUNet(nn.Module):
    """A GRU with a linear readout for the separation task (SPEC §2.2).

    Per step, from h₀ = 0 (torch.nn.GRU's convention, which is Keras's reset_after=True):
        z = σ(W_z u + b_z + U_z h + b'_z),  r = σ(W_r u + b_r + U_r h + b'_r)
        ĥ = tanh(W_h u + b_h + r ⊙ (U_h h + b'_h)),  h ← z ⊙ h + (1 − z) ⊙ ĥ
        y = W_out h + c
    torch stores the gate blocks in the order [r, z, n]: `gru.weight_hh_l0` is (3N, N) with
    rows 0…N−1 for U_r, N…2N−1 for U_z and 2N…3N−1 for U_h (the candidate block).
    """

    def __init__(self, cfg: ModelConfig, n_in: int = 3, n_out: int = 6,
                 generator: torch.Generator | None = None):
        """Keras initialisation, drawn from `generator`: the input kernel Glorot-uniform over
        all three gates together, the recurrent kernel orthogonal over all three, the readout
        Glorot-uniform, every bias zero."""
        super().__init__()
        if cfg.kind != "gru":
            raise ValueError(f"GRUNet needs ModelConfig.kind 'gru', got {cfg.kind!r}")
        n = cfg.n_units
        self.n_units, self.n_in, self.n_out = n, n_in, n_out
        self.gru = nn.GRU(n_in, n, batch_first=True)
        self.readout = nn.Linear(n, n_out)
        with torch.no_grad():
            self.gru.weight_ih_l0.copy_(_glorot_uniform(n_in, 3 * n, generator).T)
            nn.init.orthogonal_(self.gru.weight_hh_l0, generator=generator)
            self.readout.weight.copy_(_glorot_uniform(n, n_out, generator).T)
            for bias in (self.gru.bias_ih_l0, self.gru.bias_hh_l0, self.readout.bias):
                bias.zero_()

    def recurrent_block(self, gate: str) -> torch.Tensor:
        """U_r, U_z or U_h (gate "r", "z" or "h") as an (N, N) tensor, row = postsynaptic."""
        index = "rzh".index(gate)
        return self.gru.weight_hh_l0[index * self.n_units:(index + 1) * self.n_units]

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (batch, T, n_in) → hidden states h (batch, T, N) and outputs y (batch, T, n_out)."""
        h, _ = self.gru(inputs)
        return h, self.readout(h)
