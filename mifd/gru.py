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
the recurrent products go to one step's scratch array; with it (`GRUIntegration`) every
step's gₕ is kept for the backward. The arrays (hundreds of MB for a cohort) are
kept from call to call (`mifd.workspace`).

Shapes: inputs (R, batch, T, n_in) batch-first as the tasks produce them; inside, arrays
are time-major and unit-major (T, R, units, batch), so each step's gate block is
contiguous. Parameters per run in
torch's layout: w_ih (R, 3N, n_in), w_hh (R, 3N, N), b_ih and b_hh (R, 3N).
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


def _columns_into(out: torch.Tensor, time_major: torch.Tensor) -> torch.Tensor:
    """Copy (T, R, n, batch) into `out` (R, n, T·batch), each run's columns in time-major
    order; returns out."""
    steps, runs, n, batch = time_major.shape
    out.view(runs, n, steps, batch).copy_(time_major.permute(1, 2, 0, 3))
    return out


def loop_arrays(inputs_shape: tuple[int, ...], n: int, keep: bool, like: torch.Tensor
                ) -> dict[str, torch.Tensor]:
    """The arrays `gru_loop` fills, for inputs of shape (R, batch, T, n_in) and N = n units:
    states (T + 1, R, N, batch), gates (T, R, 3N, batch) and the recurrent term, every step's
    with `keep` (T, R, 3N, batch), else one step's (1, R, 3N, batch)."""
    runs, batch, n_steps, _ = inputs_shape
    return {"states": like.new_empty((n_steps + 1, runs, n, batch)),
            "gates": like.new_empty((n_steps, runs, 3 * n, batch)),
            "recurrent": like.new_empty((n_steps if keep else 1, runs, 3 * n, batch))}


def gru_loop(inputs: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, b_ih: torch.Tensor,
             w_hh: torch.Tensor, b_hh: torch.Tensor, arrays: dict[str, torch.Tensor]) -> None:
    """Run T GRU steps from h0 for every run into `arrays` (from `loop_arrays`; no autograd,
    see the module docstring).

    inputs (R, batch, T, n_in), h0 (R, batch, N). Fills, unit-major (units before batch):
    "states" h_0…h_T (T + 1, R, N, batch), "gates", the activations [r, z, n] (T, R, 3N,
    batch), and "recurrent", every step's gₕ (T, R, 3N, batch) when it has T steps, else
    scratch.

    Unit-major because each gate block of a step is then one contiguous array, on which
    torch's kernels run 2–3× faster than on the strided blocks of a batch-major array. The
    candidate uses tanh(a) = 2σ(2a) − 1 (σ runs ≈4× faster than tanh here); the factor 2 is
    folded into the input projection and the product with r.
    """
    runs, batch, n_steps, n_in = inputs.shape
    n = h0.shape[-1]
    states, gates, recurrent = arrays["states"], arrays["gates"], arrays["recurrent"]
    states[0] = h0.transpose(1, 2)
    scale = torch.ones(3 * n, 1, dtype=h0.dtype, device=h0.device)
    scale[2 * n:] = 2.0  # 2·gᵢⁿ, for tanh(a) = 2σ(2a) − 1
    for run in range(runs):  # gᵢ of every step in one product, the weights shared over steps
        torch.baddbmm((scale * b_ih[run].unsqueeze(1)).expand(n_steps, 3 * n, batch),
                      (scale * w_ih[run]).expand(n_steps, 3 * n, n_in),
                      inputs[run].permute(1, 2, 0), out=gates[:, run])
    b_hh_columns = b_hh.unsqueeze(2).expand(runs, 3 * n, batch)
    minus_one = torch.tensor(-1.0, dtype=h0.dtype, device=h0.device)
    h, g = states.unbind(0), gates.unbind(0)
    gh = (recurrent.unbind(0) if len(recurrent) == n_steps
          else recurrent.expand(n_steps, -1, -1, -1).unbind(0))
    for k in range(n_steps):
        torch.baddbmm(b_hh_columns, w_hh, h[k], out=gh[k])
        rz, cand = g[k][:, :2 * n], g[k][:, 2 * n:]
        rz.add_(gh[k][:, :2 * n]).sigmoid_()
        cand.addcmul_(rz[:, :n], gh[k][:, 2 * n:], value=2.0).sigmoid_()
        torch.add(minus_one, cand, alpha=2.0, out=cand)
        torch.lerp(cand, h[k], rz[:, n:], out=h[k + 1])


def _backward_arrays(states: torch.Tensor) -> dict[str, torch.Tensor]:
    """The backward's arrays for states (T + 1, R, N, batch): the three factors, the
    adjoints, ∂/∂gₕ and ∂/∂aⁿ per step, and their per-run column copies for the products."""
    steps, runs, n, batch = states.shape
    steps -= 1
    step = (steps, runs, n, batch)
    return {"factor_z": states.new_empty(step), "factor_n": states.new_empty(step),
            "factor_r": states.new_empty(step), "delta": states.new_empty(step),
            "grad_an": states.new_empty(step),
            "grad_gh": states.new_empty((steps, runs, 3 * n, batch)),
            "gh_columns": states.new_empty((runs, 3 * n, steps * batch)),
            "an_columns": states.new_empty((runs, n, steps * batch)),
            "h_columns": states.new_empty((runs, n, steps * batch))}


class GRUIntegration(torch.autograd.Function):
    """The GRU of R runs, (inputs, h0, w_ih, b_ih, w_hh, b_hh, workspaces) -> h_1…h_T (T, R,
    N, batch), unit-major, with the BPTT written by hand. inputs are data (no gradient), h0
    is (R, batch, N); `workspaces`, a pair of `Workspace`s, keep the forward's and the
    backward's arrays from call to call. See `gru_loop`.

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
    differentiable. The forward's arrays stay leased (not reused by the next forward) while
    the autograd graph, i.e. any of its outputs, lives.
    """

    @staticmethod
    def forward(ctx, inputs, h0, w_ih, b_ih, w_hh, b_hh, workspaces):
        if inputs.requires_grad:
            raise ValueError("GRUIntegration: the inputs are data; no gradient flows to them")
        key = (tuple(inputs.shape), h0.shape[-1], h0.dtype, h0.device)
        arrays, ctx.lease = workspaces[0].take(
            key, lambda: loop_arrays(inputs.shape, h0.shape[-1], True, h0))
        gru_loop(inputs, h0, w_ih, b_ih, w_hh, b_hh, arrays)
        ctx.save_for_backward(inputs, w_hh)
        ctx.arrays, ctx.workspace = arrays, workspaces[1]
        ctx.set_materialize_grads(False)
        return arrays["states"][1:].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states):
        if grad_states is None:
            return (None,) * 7
        inputs, w_hh = ctx.saved_tensors
        states, gates, recurrent = (ctx.arrays[k] for k in ("states", "gates", "recurrent"))
        work, lease = ctx.workspace.take((tuple(states.shape), states.dtype, states.device),
                                         lambda: _backward_arrays(states))
        n = states.shape[2]
        r, z, cand = gates[:, :, :n], gates[:, :, n:2 * n], gates[:, :, 2 * n:]
        factor_z, factor_n, factor_r = work["factor_z"], work["factor_n"], work["factor_r"]
        torch.sub(states[:-1], cand, out=factor_z).mul_(z)
        factor_z.addcmul_(factor_z, z, value=-1.0)             # (h − n) z (1 − z)
        torch.mul(cand, cand, out=factor_n).neg_().add_(1.0)
        factor_n.addcmul_(factor_n, z, value=-1.0)             # (1 − n²)(1 − z)
        torch.mul(r, recurrent[:, :, 2 * n:], out=factor_r)
        factor_r.addcmul_(factor_r, r, value=-1.0)             # gₕⁿ r (1 − r)
        delta, grad_gh, grad_an = work["delta"], work["grad_gh"], work["grad_an"]
        delta.copy_(grad_states)
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
        gh_columns = _columns_into(work["gh_columns"], grad_gh)      # (R, 3N, T·batch)
        grad_w_hh = torch.bmm(gh_columns, _columns_into(work["h_columns"], states[:-1])
                              .transpose(1, 2))
        grad_b_hh = gh_columns.sum(2)
        runs, batch, steps, n_in = inputs.shape
        input_rows = inputs.permute(0, 2, 1, 3).reshape(runs, steps * batch, n_in)
        grad_w_ih = torch.bmm(gh_columns, input_rows)
        an_columns = _columns_into(work["an_columns"], grad_an)
        grad_w_ih[:, 2 * n:] = torch.bmm(an_columns, input_rows)
        grad_b_ih = grad_b_hh.clone()
        grad_b_ih[:, 2 * n:] = an_columns.sum(2)
        del lease
        return None, carry.transpose(1, 2), grad_w_ih, grad_b_ih, grad_w_hh, grad_b_hh, None
