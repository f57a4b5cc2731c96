"""PPO on Acrobot-v1 as ``harness.training.ppo.train`` runs it, alone or under torchrun; rank 0
writes the updates' statistics and the final weights to OUT (JSON). Used by
``tests/test_distributed.py`` to compare 2 ranks x (num_envs / 2) with 1 process x num_envs.

Acrobot-v1 because Gymnasium vectorises it with ``SyncVectorEnv``, which seeds copy i with
seed + i: rank r's copy j is then exactly the single process's copy r * n + j. CartPole's native
vector env draws every copy's state from one generator, so its copies cannot be split that way
(docs/distributed.md).

    python tests/distributed_ppo_driver.py OUT NUM_ENVS [EPOCHS]
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.config import load_config
from harness.envs import EnvSpec, check_spaces
from harness.training import distributed
from harness.training.policy import MLPPolicy, PolicySpec
from harness.training.ppo import ActorCritic, train
from harness.training.rollout import make_envs
from harness.training.seeding import deterministic

ENV = EnvSpec.of("Acrobot-v1", {})
BASE = Path(__file__).resolve().parents[1] / "configs" / "examples" / "poc_hybrid.yaml"


def main(out: Path, num_envs: int, epochs: int) -> None:
    cfg = replace(load_config(BASE).ppo, num_envs=num_envs, num_steps=128, epochs=epochs)
    obs_space, act_space, _ = check_spaces(ENV)
    spec = PolicySpec.for_spaces(obs_space, act_space, (64, 64))
    with distributed.launch("cpu") as world, deterministic(7) as generator:
        model = ActorCritic(MLPPolicy(spec), (64, 64))
        envs = make_envs(ENV, num_envs // world.size)
        try:
            history = train(model, envs, cfg, 7, generator)
        finally:
            envs.close()
        if world.writer:
            weights = {k: v.reshape(-1).tolist() for k, v in model.state_dict().items()}
            stats = [{**h.to_json(), "steps_per_second": None} for h in history]
            out.write_text(
                json.dumps({"world_size": world.size, "updates": stats, "weights": weights})
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 2)
