"""Keeping the garbage collector's full collections short in a long-running service.

A full (generation 2) collection walks every tracked object. A service holds
hundreds of thousands of them from start-up alone (modules, botocore's service
models, pydantic schemas, the clients), so a full collection stopped every
service for 100-240 ms at a time during a benchmark job: a stop, a call slot
or a gateway request waiting behind it waited that long. Once a service is up,
``freeze_startup_heap`` moves everything then alive to the permanent generation
(``gc.freeze``), which collections never walk; objects made afterwards are
collected as before.
"""

from __future__ import annotations

import gc
import time

import structlog

log = structlog.get_logger("palette.heap")


def freeze_startup_heap() -> None:
    """Collect once, then exempt every surviving object from later collections.

    Logs ``startup_heap_frozen`` with the number of objects now exempt.
    """
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "startup_heap_frozen",
        objects=gc.get_freeze_count(),
        seconds=round(time.perf_counter() - started, 4),
    )
