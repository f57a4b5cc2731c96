"""Adam and gradient-norm clipping, written out with torch's multi-tensor (``_foreach``) ops.

Why not ``torch.optim.Adam``: constructing any ``torch.optim`` optimiser imports
``torch._dynamo`` on first use, which costs more than the whole BC training on idle_v1 (1.4 to
2.1 s here; ``python scripts/docs_figures.py --section internals`` measures it). Every CLI run
and rehearsal subprocess would pay it. The rule itself is a few lines, and
``tests/test_optim.py`` checks it against ``torch.optim.Adam`` step by step.

Both work on all parameters at once through ``torch._foreach_*`` (what ``torch.optim`` itself
uses): PPO takes 32 small optimiser steps per update, and a Python loop over the twelve
parameter tensors costs half as much again as the ``_foreach`` step. ``clip_grad_norm`` does what
``torch.nn.utils.clip_grad_norm_`` does without its per-call device grouping, in about half its
time (the same ``--section internals`` measures both).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class Adam:
    """Adam (Kingma and Ba, 2015) with bias correction; no weight decay, no amsgrad.

    ``lr`` may be changed between steps (learning-rate schedules).
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        exp_avg = [self.exp_avg[i] for i in live]
        exp_avg_sq = [self.exp_avg_sq[i] for i in live]
        self.steps += 1
        correction1 = 1 - self.beta1**self.steps
        correction2_sqrt = math.sqrt(1 - self.beta2**self.steps)
        torch._foreach_lerp_(exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - self.beta2)
        denominator = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denominator, correction2_sqrt)
        torch._foreach_add_(denominator, self.eps)
        torch._foreach_addcdiv_(params, exp_avg, denominator, value=-self.lr / correction1)


@torch.no_grad()
def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm``; return the norm."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))
    return total
