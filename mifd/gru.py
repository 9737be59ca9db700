"""The GRU of the separation task (SPEC §2.2) as one fused loop for a cohort of R runs, with
its BPTT written by hand.

For run r and step k, torch.nn.GRU's convention (Keras `reset_after=True`), row vectors,
gate blocks in torch's order [r, z, n]:

    gᵢ = u_k @ w_ih[r]ᵀ + b_ih[r],   gₕ = h_k @ w_hh[r]ᵀ + b_hh[r]      (each 3N)
    r = σ(gᵢʳ + gₕʳ),   z = σ(gᵢᶻ + gₕᶻ),   n = tanh(gᵢⁿ + r ⊙ gₕⁿ)
    h_{k+1} = n + z ⊙ (h_k − n)                     (= (1 − z) ⊙ n + z ⊙ h_k)

`gru_loop` computes gᵢ for all steps in one product per run, then per step one batched
recurrent product (R × (3N, N) @ (N, batch)) and six in-place kernels on per-step views
made once: gᵢ's array becomes the gate activations [r, z, n] in place. On a CPU the
recurrent product of one run (100 units, batch 50) already runs near a core's float32 peak,
so a cohort's step costs about R times one run's (benchmarks/bench_separation.py); the gain
of the run axis is on GPUs, where a step is bound by kernel launches. Without gradient
(`keep=False`) the recurrent products go to one scratch array; with it (`GRUIntegration`)
every step's gₕ is kept for the backward.

Shapes: inputs (R, batch, T, n_in) batch-first as the tasks produce them; inside, arrays
are time-major and unit-major (T, R, units, batch), so each step's gate block is
contiguous. Parameters per run in
torch's layout: w_ih (R, 3N, n_in), w_hh (R, 3N, N), b_ih and b_hh (R, 3N).
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def _columns(time_major: torch.Tensor) -> torch.Tensor:
    """(T, R, n, batch) -> (R, n, T·batch): each run's columns in time-major order (a copy)."""
    steps, runs, n, batch = time_major.shape
    return time_major.permute(1, 2, 0, 3).reshape(runs, n, steps * batch)


def _input_columns(inputs: torch.Tensor) -> torch.Tensor:
    """inputs (R, batch, T, n_in) -> (R, n_in, T·batch), columns in time-major order (a copy)."""
    runs, batch, steps, n_in = inputs.shape
    return inputs.permute(0, 3, 2, 1).reshape(runs, n_in, steps * batch)


def _arrays(buffers: dict | None, key: tuple, make) -> dict[str, torch.Tensor]:
    """The arrays `make()` returns, kept in `buffers` (a dict owned by the caller) and handed
    out again while `key` (shapes, dtype, device) is unchanged; fresh when buffers is None."""
    if buffers is None:
        return make()
    if buffers.get("key") != key:
        buffers.clear()
        buffers.update(make(), key=key)
    return buffers


def gru_loop(inputs: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor,
             w_hh: torch.Tensor, b_hh: torch.Tensor, keep: bool = False,
             buffers: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run T GRU steps from h0 for every run (no autograd; see the module docstring).

    inputs (R, batch, T, n_in), h0 (R, batch, N). Returns, unit-major (units before batch):
    the states h_0…h_T (T + 1, R, N, batch), the gate activations [r, z, n] (T, R, 3N,
    batch) and, with `keep`, every step's recurrent term gₕ (T, R, 3N, batch), else None.
    With `buffers` (without `keep`) the arrays are reused from call to call of the same
    shapes: a fresh 200 MB array costs more to fault into memory than the loop's arithmetic.

    Unit-major because each gate block of a step is then one contiguous array, on which
    torch's kernels run 2–3× faster than on the strided blocks of a batch-major array. The
    candidate uses tanh(a) = 2σ(2a) − 1 (σ runs ≈4× faster than tanh here); the factor 2 is
    folded into the input projection and the product with r.
    """
    runs, batch, n_steps, n_in = inputs.shape
    n = h0.shape[-1]
    like = dict(dtype=h0.dtype, device=h0.device)

    def make():
        return {"states": torch.empty((n_steps + 1, runs, n, batch), **like),
                "gates": torch.empty((n_steps, runs, 3 * n, batch), **like),
                "recurrent": torch.empty((n_steps if keep else 1, runs, 3 * n, batch), **like)}

    key = (tuple(inputs.shape), n, h0.dtype, h0.device, keep)
    arrays = _arrays(None if keep else buffers, key, make)
    states, gates, recurrent = arrays["states"], arrays["gates"], arrays["recurrent"]
    states[0] = h0.transpose(1, 2)
    scale = torch.ones(3 * n, 1, **like)
    scale[2 * n:] = 2.0  # 2·gᵢⁿ, for tanh(a) = 2σ(2a) − 1
    for run in range(runs):  # gᵢ of every step in one product, the weights shared over steps
        torch.baddbmm((scale * b_ih[run].unsqueeze(1)).expand(n_steps, 3 * n, batch),
                      (scale * w_ih[run]).expand(n_steps, 3 * n, n_in),
                      inputs[run].permute(1, 2, 0), out=gates[:, run])
    b_hh_columns = b_hh.unsqueeze(2).expand(runs, 3 * n, batch)
    minus_one = torch.tensor(-1.0, **like)
    h, g = states.unbind(0), gates.unbind(0)
    gh = recurrent.unbind(0) if keep else recurrent[0:1].expand(n_steps, -1, -1, -1).unbind(0)
    for k in range(n_steps):
        torch.baddbmm(b_hh_columns, w_hh, h[k], out=gh[k])
        rz, cand = g[k][:, :2 * n], g[k][:, 2 * n:]
        rz.add_(gh[k][:, :2 * n]).sigmoid_()
        cand.addcmul_(rz[:, :n], gh[k][:, 2 * n:], value=2.0).sigmoid_()
        torch.add(minus_one, cand, alpha=2.0, out=cand)
        torch.lerp(cand, h[k], rz[:, n:], out=h[k + 1])
    return states, gates, (recurrent if keep else None)


class GRUIntegration(torch.autograd.Function):
    """The GRU of R runs, (inputs, h0, w_ih, b_ih, w_hh, b_hh) -> h_1…h_T (T, R, N, batch),
    unit-major, with the BPTT written by hand. inputs are data (no gradient), h0 is (R,
    batch, N); see `gru_loop`.

    Backward: with δ the total adjoint of h_{k+1} (the gradient arriving on it plus what
    flows back from step k + 1), and the saved activations r, z, n and recurrent term gₕ:
        ∂/∂aᶻ = δ ⊙ (h_k − n) ⊙ z(1 − z)
        ∂/∂aⁿ = δ ⊙ (1 − z) ⊙ (1 − n²)            (aⁿ = gᵢⁿ + r ⊙ gₕⁿ)
        ∂/∂aʳ = ∂/∂aⁿ ⊙ gₕⁿ ⊙ r(1 − r)
        ∂/∂gₕ = [∂/∂aʳ, ∂/∂aᶻ, ∂/∂aⁿ ⊙ r],   ∂/∂gᵢ = [∂/∂aʳ, ∂/∂aᶻ, ∂/∂aⁿ]
        adjoint of h_k: δ ⊙ z + w_hhᵀ ∂/∂gₕ
    The factors that do not depend on δ are computed for all steps before the loop; the
    weight gradients are one product per run over all steps: ∂w_hh = Σₖ ∂/∂gₕ h_kᵀ,
    ∂w_ih = Σₖ ∂/∂gᵢ u_kᵀ, and the biases the sums of ∂/∂gₕ and ∂/∂gᵢ. Not twice
    differentiable.
    """

    @staticmethod
    def forward(ctx, inputs, h0, w_ih, b_ih, w_hh, b_hh):
        states, gates, recurrent = gru_loop(inputs, h0, w_ih, b_ih, w_hh, b_hh, keep=True)
        ctx.save_for_backward(inputs, states, gates, recurrent, w_hh)
        ctx.set_materialize_grads(False)
        return states[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states):
        if grad_states is None:
            return None, None, None, None, None, None
        inputs, states, gates, recurrent, w_hh = ctx.saved_tensors
        n = states.shape[2]
        r, z, cand = gates[:, :, :n], gates[:, :, n:2 * n], gates[:, :, 2 * n:]
        factor_z = (states[:-1] - cand).mul_(z).mul_(1.0 - z)
        factor_n = cand.square().neg_().add_(1.0).mul_(1.0 - z)
        factor_r = r * (1.0 - r) * recurrent[:, :, 2 * n:]
        delta = grad_states.clone(memory_format=torch.contiguous_format)
        grad_gh = torch.empty_like(gates)       # ∂/∂gₕ per step
        grad_an = torch.empty_like(factor_n)    # ∂/∂aⁿ per step (the n block of ∂/∂gᵢ)
        carry = torch.zeros_like(states[0])
        w_hh_t = w_hh.transpose(1, 2)
        d, dg, dn = delta.unbind(0), grad_gh.unbind(0), grad_an.unbind(0)
        fz, fn, fr, zs, rs = (a.unbind(0) for a in (factor_z, factor_n, factor_r, z, r))
        for k in range(len(d) - 1, -1, -1):
            d[k].add_(carry)
            torch.mul(d[k], fz[k], out=dg[k][:, n:2 * n])
            torch.mul(d[k], fn[k], out=dn[k])
            torch.mul(dn[k], rs[k], out=dg[k][:, 2 * n:])
            torch.mul(dn[k], fr[k], out=dg[k][:, :n])
            torch.mul(d[k], zs[k], out=carry).baddbmm_(w_hh_t, dg[k])
        gh_columns = _columns(grad_gh)                      # (R, 3N, T·batch)
        grad_w_hh = torch.bmm(gh_columns, _columns(states[:-1]).transpose(1, 2))
        grad_b_hh = gh_columns.sum(2)
        input_rows = _input_columns(inputs).transpose(1, 2)  # (R, T·batch, n_in)
        grad_w_ih = torch.bmm(gh_columns, input_rows)
        an_columns = _columns(grad_an)
        grad_w_ih[:, 2 * n:] = torch.bmm(an_columns, input_rows)
        grad_b_ih = grad_b_hh.clone()
        grad_b_ih[:, 2 * n:] = an_columns.sum(2)
        return None, carry.transpose(1, 2), grad_w_ih, grad_b_ih, grad_w_hh, grad_b_hh
