"""The rollback drill's threshold: the one asked for, unless step 2's accuracy already meets it.

The drill must make the BC gate fail, so that it can check that a failed gate rolls back
cleanly. Its CLI run retrains BC with step 2's config and seed (only the threshold and the
output folders differ), which reproduces step 2's hold-out accuracy exactly. So:

- step 2's accuracy below the threshold asked (``--drill-threshold``, default 0.95): that
  threshold is used;
- step 2's accuracy at or above it: the drill raises its threshold to the smallest step of
  ``STEP`` strictly above that accuracy, which the retrained BC cannot reach;
- no such threshold of at most 1 (step 2's accuracy is 1.0): nothing can make the gate fail,
  and the drill step fails with that reason instead of running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

STEP = 1e-4  # thresholds are raised in steps of this size: shown with four decimals


@dataclass(frozen=True)
class DrillThreshold:
    asked: float
    measured: float
    """Step 2's hold-out accuracy."""
    used: float | None
    """The threshold the drill runs with; None when none of at most 1 can fail."""

    @property
    def raised(self) -> bool:
        return self.used is not None and self.used != self.asked

    @property
    def why(self) -> str:
        measured = f"step 2's hold-out accuracy {self.measured:.4f}"
        if self.used is None:
            return (
                f"{measured} is perfect: no threshold of at most 1 can make the BC gate fail, "
                "so the drill cannot force a rollback on this dataset"
            )
        if not self.raised:
            return f"{measured} is below {self.asked:g}, so the gate must fail"
        return (
            f"{measured} already meets {self.asked:g}; the drill retrains BC with the same config "
            f"and seed, which reproduces that accuracy, so it raised its threshold to "
            f"{self.used:g}, just above it, for the gate to fail"
        )

    def metrics(self) -> dict[str, Any]:
        return {
            "threshold_asked": self.asked,
            "threshold": self.used,
            "threshold_raised": self.raised,
            "threshold_why": self.why,
        }


def drill_threshold(asked: float, measured: float) -> DrillThreshold:
    """The drill's threshold for step 2's accuracy ``measured`` (see the module docstring)."""
    if measured < asked:
        return DrillThreshold(asked, measured, asked)
    used = round(math.floor(measured / STEP) * STEP, 4)
    while used <= measured:  # floating point: floor may land on or just below measured
        used = round(used + STEP, 4)
    return DrillThreshold(asked, measured, used if used <= 1.0 else None)
