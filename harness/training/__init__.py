"""The trainer: from verified captures to a gated, promoted (or rolled-back) checkpoint.

- ``facade``: ``TrainingHarness``, the front end the CLI and the rehearsal call; which stages run
- ``stages``: the BC and PPO stages (train, measure, gate); ``finishing``: their one finishing
  path (the outputs checked, then promotion or rollback and the record as one transaction);
  ``results``: what a stage returns
- ``bc``: demonstrations, the hold-out split, the BC loss, trainer and accuracy gate
- ``ppo``: PPO's loss and update with the annealed BC term, the evaluation, the regression gate;
  ``rollout``: stepping the environments and GAE
- ``policy``: the policy network shared by BC and PPO; ``optim``: Adam and gradient clipping
- ``seeding``: determinism (seeds, one torch thread)
- ``checkpoints``: the checkpoint store, promotion and rollback; ``checkpoint_folder``: one
  checkpoint, its id over its metadata and payloads; ``storefiles``: reading a store's and a run
  log's files as untrusted input; ``weights``: a checkpoint's weights loaded as a policy, checked
- ``runlog``: the run log (``anneal_results.json``) and the PPO log

Importing this package, ``facade`` or ``results`` does not import torch; ``stages`` and the
modules it uses do, on first training.
"""
