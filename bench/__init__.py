"""Side-by-side benchmarks: each compares otel-assist with a baseline in the same run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BenchResult:
    """One benchmark's outcome. ``ratio`` is ours / baseline in the benchmark's own sense."""

    name: str
    ratio: float
    ours: float
    baseline: float
    unit: str
    target: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # A second condition of the target that the ratio alone does not show (rss: no
    # growth between 50k and 100k requests); False fails the run whatever the ratio.
    also_met: bool | None = None

    def line(self) -> str:
        """The contract line every benchmark prints last."""
        return (
            f"{self.name}: ratio={self.ratio:.3f} ours={self.ours:.6g} "
            f"baseline={self.baseline:.6g} {self.unit}"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
