"""Optimisers and gradient clipping with the semantics of the authors' Keras code (SPEC §4.4).

* `RMSprop`: ρ-weighted mean square, step lr·g/√(v + ε) (Keras ≥ 2.11, ε inside the root)
  or lr·g/(√v + ε) (legacy Keras, `torch.optim.RMSprop`), chosen by `eps_inside_sqrt`.
* `clip_per_tensor_norm`: Keras `clipnorm`, a separate L2-norm clip of each tensor of each
  run (parameters carry a leading run axis).
* `clip_values`: Keras `clipvalue`, element-wise.
* `make_optimizer`: the optimiser named in a config.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


class RMSprop(torch.optim.Optimizer):
    """RMSprop without momentum or centring: v ← ρv + (1−ρ)g², θ ← θ − lr·g/√(v+ε)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, rho: float = 0.9,
                 eps: float = 1e-7, eps_inside_sqrt: bool = True):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, eps_inside_sqrt=eps_inside_sqrt))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, rho, eps = group["lr"], group["rho"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.zeros_like(p)
                v = state["square_avg"]
                v.mul_(rho).addcmul_(p.grad, p.grad, value=1 - rho)
                denom = (v + eps).sqrt_() if group["eps_inside_sqrt"] else v.sqrt().add_(eps)
                p.addcdiv_(p.grad, denom, value=-lr)
        return loss


def make_optimizer(params: Iterable[torch.Tensor], name: str, lr: float, eps: float,
                   rho: float = 0.9, eps_inside_sqrt: bool = True) -> torch.optim.Optimizer:
    """`rmsprop` (Keras semantics above) or `adam` (β = (0.9, 0.999)) with the given ε."""
    if name == "rmsprop":
        return RMSprop(params, lr=lr, rho=rho, eps=eps, eps_inside_sqrt=eps_inside_sqrt)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=eps)
    raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {name!r}")


@torch.no_grad()
def clip_per_tensor_norm(params: Iterable[torch.Tensor], max_norm: float) -> None:
    """Scale each tensor's gradient to L2 norm ≤ max_norm, independently (Keras clipnorm),
    and run by run: every tensor carries a leading run axis, and the norm is taken over all
    its other axes, so one run's gradient never scales another's."""
    for p in params:
        if p.grad is not None:
            norms = torch.linalg.vector_norm(p.grad.reshape(p.shape[0], -1), dim=1)
            scale = torch.where(norms > max_norm, max_norm / norms, torch.ones_like(norms))
            p.grad.mul_(scale.view(-1, *([1] * (p.dim() - 1))))


@torch.no_grad()
def clip_values(params: Iterable[torch.Tensor], limit: float) -> None:
    """Clamp every gradient element to [−limit, limit] (Keras clipvalue)."""
    for p in params:
        if p.grad is not None:
            p.grad.clamp_(-limit, limit)
