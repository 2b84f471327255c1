"""The cyclic garbage collector's settings while the app serves requests.

Why: a 1,000-event ingest batch allocates tens of thousands of container objects (the
validated models, their datetimes, the row tuples), so with Python's default first
threshold (700 allocations) the collector ran about 14 young collections per batch, and
every few batches a full one over the whole heap, including the ~157,000 objects that
imports and app construction leave behind and that never become garbage. Measured on
bench/ingest_throughput.py's load (4 clients, 1,000-event batches), the collector took
2.2-2.4 s of service CPU out of ~11 s (about 6.5 ms per 1,000 rows, the full collections
~110-145 ms each); with the startup objects frozen (``gc.freeze``) and the first
threshold at 10,000, 0.39 s, and the service's CPU per 1,000 rows went from ~30 to ~19 ms.

Nothing is kept longer: reference counting frees acyclic garbage at once as before; only
cycles wait up to 10,000 allocations instead of 700 for a collection. Frozen objects are
the ones alive at startup. Both are undone when the app stops (in-process test apps share
the interpreter with the tests).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def serving_gc(threshold: int) -> Iterator[None]:
    """Freeze what startup left alive and raise the first GC threshold; restore on exit.
    ``threshold`` 0 changes nothing."""
    if threshold <= 0:
        yield
        return
    before = gc.get_threshold()
    gc.collect()  # startup garbage is collected, not frozen
    gc.freeze()
    gc.set_threshold(threshold, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
