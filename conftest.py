"""Shared test set-up for every test folder: ``tests/`` and the integrations' ``tests/``.

The helper modules (``checkpoints``, ``store_fixtures``, ...) and the session fixtures
(``tests/shared_fixtures.py``) live in ``tests/``; this root conftest puts that folder on the import
path and loads the fixtures as a plugin, so ``python -m pytest integrations/langchain/tests`` finds
them as well as the whole suite does.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

pytest_plugins = ["shared_fixtures"]
