"""What the air-void figures share: a reported parameter (value, unit, what it is) and ASTM C457's branch point."""

from __future__ import annotations

import numpy as np

SPACING_FACTOR_BRANCH = 4.342
"""p/A at which ASTM C457 switches between the two branches of Powers' spacing factor."""


def param(value, unit: str, description: str) -> dict:
    """A reported parameter: {"value", "unit", "description"} (numpy scalars as Python numbers)."""
    if isinstance(value, np.generic):
        value = value.item()
    return {"value": value, "unit": unit, "description": description}
