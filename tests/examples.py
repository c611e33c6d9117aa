"""The repository's examples folder: seed records, and the publishing example as a module.

Tests of every kind read these (the publishing example is run by the
integration tests and compared with its documentation by the deploy tests).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEEDS = EXAMPLES / "seeds.jsonl"
PUBLISHING_EXAMPLE = EXAMPLES / "publish_submit_job.py"


def load_publishing_example() -> ModuleType:
    """``examples/publish_submit_job.py``, imported from its file as a new module."""
    spec = importlib.util.spec_from_file_location("publish_submit_job", PUBLISHING_EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
