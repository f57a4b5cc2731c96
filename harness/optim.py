"""Adam, written out: the update rule of ``torch.optim.Adam`` (single-tensor path, defaults).

Why not ``torch.optim.Adam``: constructing any ``torch.optim`` optimiser imports
``torch._dynamo`` on first use, which costs about 1.5 s on these machines (measured with
cProfile on ``run_training.py --mode bc``), three times the whole BC training on idle_v1. Every
CLI run and rehearsal subprocess would pay it. The rule itself is a few lines, and
``tests/test_optim.py`` checks it against ``torch.optim.Adam`` step by step.
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
        self.steps += 1
        correction1 = 1 - self.beta1**self.steps
        correction2_sqrt = math.sqrt(1 - self.beta2**self.steps)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1 - self.beta1)
            v.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1 - self.beta2)
            denominator = (v.sqrt() / correction2_sqrt).add_(self.eps)
            p.addcdiv_(m, denominator, value=-self.lr / correction1)
