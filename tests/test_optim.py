"""Our Adam follows torch.optim.Adam step by step (it exists only to skip a slow import)."""

from __future__ import annotations

import torch

from harness.training.optim import Adam
from harness.training.policy import MLPPolicy, PolicySpec


def _twin_policies() -> tuple[MLPPolicy, MLPPolicy]:
    torch.manual_seed(3)
    a = MLPPolicy(PolicySpec(4, 3, (16, 16)))
    b = MLPPolicy(PolicySpec(4, 3, (16, 16)))
    b.load_state_dict(a.state_dict())
    return a, b


def test_adam_matches_torch_optim_adam() -> None:
    ours_policy, theirs_policy = _twin_policies()
    ours = Adam(ours_policy.parameters(), lr=3e-3)
    theirs = torch.optim.Adam(theirs_policy.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for step in range(50):
        obs = torch.randn(32, 4, generator=generator)
        actions = torch.randint(0, 3, (32,), generator=generator)
        if step == 25:  # a schedule changes the rate between steps
            ours.lr = theirs.param_groups[0]["lr"] = 1e-3
        for policy, optimiser in ((ours_policy, ours), (theirs_policy, theirs)):
            loss = torch.nn.functional.cross_entropy(policy(obs), actions)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    for mine, reference in zip(ours_policy.parameters(), theirs_policy.parameters(), strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-6)
    assert not torch.equal(next(ours_policy.parameters()), next(_twin_policies()[0].parameters()))
