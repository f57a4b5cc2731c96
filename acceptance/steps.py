"""The rehearsal's five steps and what the controller collects of each: shared by the plugin,
which runs and collects them, and the report, which writes them down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    needs: tuple[str, ...]
    """Earlier steps whose failure makes this one meaningless: it is then aborted."""

    @property
    def aborts_with(self) -> str:
        """The skip reason of the steps that need this one, when it failed."""
        name = self.title if self.title.startswith("BC") else self.title.lower()
        return f"aborted: {name} failed"


STEPS = (
    Step("dataset_integrity", "Dataset integrity", ()),
    Step("bc_trainer", "BC trainer verification", ("dataset_integrity",)),
    Step("anneal_smoke", "Anneal smoke", ("dataset_integrity",)),
    # The drill runs against a copy of the BC step's store: without its promoted checkpoint,
    # "the promoted checkpoint is unchanged" would prove nothing.
    Step("rollback_drill", "Rollback drill", ("dataset_integrity", "bc_trainer")),
    Step("artefact_capture", "Ops artefact capture", ("dataset_integrity",)),
)
STEP = {s.key: s for s in STEPS}


@dataclass
class Collected:
    """What the controller has seen of one step (all phases of its test)."""

    nodeid: str | None
    outcome: str = "not run"
    duration: float = 0.0
    message: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    cause: dict[str, Any] | None = None
    """What the step recorded of why it failed (``acceptance/diagnosis.py``), if it knew."""
