"""The trainer: from verified captures to a gated, promoted (or rolled-back) checkpoint.

- ``facade``: ``TrainingHarness``, the front end the CLI and the rehearsal call
- ``bc``: demonstrations, the hold-out split, the BC loss, trainer and accuracy gate
- ``ppo``: PPO with the annealed BC term, the evaluation and the regression gate
- ``policy``: the policy network shared by BC and PPO; ``optim``: Adam and gradient clipping
- ``seeding``: determinism (seeds, one torch thread)
- ``checkpoints``: the checkpoint store, promotion and rollback
- ``runlog``: the run log (``anneal_results.json``) and the PPO log

Importing this package does not import torch; the modules that train do, on first use.
"""
