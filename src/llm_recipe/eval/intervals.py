"""Intervals for rates: the Wilson score interval of k successes in n trials.

    wilson(k, n)       (low, high) at 95% (z = 1.96); (None, None) for n = 0
    rate_with_ci(k, n) {"rate", "ci95", "k", "n"}: how every rate of the eval report is stored

Wilson, not the normal approximation: it stays inside [0, 1] and is honest at 0/n and n/n, where the
normal interval collapses to a point (0% refusals out of 56 is [0%, 6%], not [0%, 0%]).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def rate_with_ci(k: int, n: int) -> dict:
    lo, hi = wilson(k, n)
    return {"rate": k / n if n else None, "ci95": [lo, hi], "k": int(k), "n": int(n)}
