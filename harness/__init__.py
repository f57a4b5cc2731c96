"""Phase 5.4 ops rehearsal harness: dataset tooling, BC + PPO trainer, checkpoint promotion.

``from harness import TrainingHarness, load_config`` gives the training facade; both are loaded
on first use so that the dataset tools never pay for importing PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["TrainingHarness", "__version__", "load_config"]

if TYPE_CHECKING:
    from harness.config import load_config
    from harness.training.facade import TrainingHarness


def __getattr__(name: str) -> Any:
    if name == "TrainingHarness":
        from harness.training.facade import TrainingHarness

        return TrainingHarness
    if name == "load_config":
        from harness.config import load_config

        return load_config
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
