"""The settings of a run that are not the layer: seed, tolerances, method, timeout.

Built and validated once (by the CLI or the pytest API), then passed whole to every case, so a
setting cannot be dropped on the way and a bad one is refused before the first case runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from convgrad.isolation import DEFAULT_TIMEOUT_S, validate_timeout
from convgrad.methods import DEFAULT_SAMPLES, validate_method
from convgrad.tolerances import Tolerances, tolerances_for

__all__ = ["CheckOptions"]


@dataclass(frozen=True)
class CheckOptions:
    """How every case of a run is checked. None means the default for the case's dtype."""

    seed: int = 0
    relative_step: Optional[float] = None
    rtol: Optional[float] = None
    method: str = "auto"
    samples: int = DEFAULT_SAMPLES
    forward_check: bool = True
    timeout: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        # The step and rtol are validated per dtype, by `tolerances`, when the cases are known.
        validate_method(self.method, self.samples)
        object.__setattr__(self, "timeout", validate_timeout(self.timeout))

    def tolerances(self, dtype: str) -> Tolerances:
        return tolerances_for(dtype, relative_step=self.relative_step, rtol=self.rtol)

    def check_keywords(self, dtype: str) -> dict[str, Any]:
        """The keywords of `check_layer` these options set, for a layer of `dtype`."""
        return dict(
            seed=self.seed,
            tolerances=self.tolerances(dtype),
            forward_check=self.forward_check,
            method=self.method,
            samples=self.samples,
        )
