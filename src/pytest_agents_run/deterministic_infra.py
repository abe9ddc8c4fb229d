"""Every test's infra gets ids and time that repeat, whichever factory built it.

A hook that builds its infra like production does (``load_infra_from_config``, or ``Infra(...)``
by hand) gets ``RandomIds`` and the ``SystemClock``: the fixture puts ``SequentialIds`` and a
``ManualClock`` in their place. Ids and clocks of any other kind were chosen for the test and are
kept. A hook that wants even the production ones returns ``keep_ids_and_clock(infra)``.
"""

from __future__ import annotations

import dataclasses
import weakref

from agents_run import Infra, ManualClock, SequentialIds
from agents_run.ids_and_time import RandomIds, SystemClock

# By id: an Infra hashes by its fields, which need not be hashable.
_kept: dict[int, weakref.ref[Infra]] = {}


def keep_ids_and_clock(infra: Infra) -> Infra:
    """Return ``infra``, marked so that the ``infra`` fixture keeps its ids and clock as they are
    (random ids and the system clock included): for a hook whose tests need them."""
    key = id(infra)
    _kept[key] = weakref.ref(infra, lambda _: _kept.pop(key, None))
    return infra


def with_test_ids_and_clock(infra: Infra) -> Infra:
    """``infra`` with ``SequentialIds`` and ``ManualClock`` in place of production ones."""
    kept = _kept.get(id(infra))
    if kept is not None and kept() is infra:
        return infra
    ids = SequentialIds() if isinstance(infra.ids, RandomIds) else infra.ids
    clock = ManualClock() if isinstance(infra.clock, SystemClock) else infra.clock
    if ids is infra.ids and clock is infra.clock:
        return infra
    return dataclasses.replace(infra, ids=ids, clock=clock)
