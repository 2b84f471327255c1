"""Retry delays for the library's background loops: exponential backoff with jitter.

The history shipper, the monitor registrar, the queue consumer's reconnects and the log
exporter all wait with jitter between attempts. The jitter is drawn from a generator of
the library's own, never from the ``random`` module's global one:

- the application's global random state stays the application's: a service that seeds
  ``random`` for reproducible behaviour would otherwise see its sequence depend on when
  our threads happened to retry (Hypothesis flagged exactly that in our own tests: a
  strategy's global random state moved by a retrying background thread);
- the generator is reseeded in a forked child, so worker processes forked from one
  parent do not draw the same jitter and retry in step against a rest_service or a
  Collector that has just come back.
"""

from __future__ import annotations

import os
import random

_rng = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rng.seed)


def jittered(delay: float) -> float:
    """``delay`` with equal jitter: uniform between ``delay / 2`` and ``delay``."""
    return delay / 2 + _rng.uniform(0, delay / 2)


def exponential_delay(failures: int, initial_s: float, max_s: float) -> float:
    """The jittered wait after ``failures`` consecutive failures (1 for the first):
    ``initial_s`` doubled per further failure, capped at ``max_s``."""
    return jittered(min(max_s, initial_s * 2 ** min(max(failures, 1) - 1, 30)))


def spread(value: float, fraction: float = 0.2) -> float:
    """``value`` times a uniform factor between ``1 - fraction`` and ``1 + fraction``."""
    return value * _rng.uniform(1 - fraction, 1 + fraction)
