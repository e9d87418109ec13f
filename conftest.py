"""Shared test set-up for every test folder: ``tests/`` and the integrations' ``tests/``.

The helper modules (``checkpoints``, ``store_fixtures``, ...) and the session fixtures
(``tests/shared_fixtures.py``) live in ``tests/``; this root conftest puts that folder on the import
path and loads the fixtures as a plugin, so ``python -m pytest integrations/langchain/tests`` finds
them as well as the whole suite does.
"""

import sys
from pathlib import Path

from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

pytest_plugins = ["shared_fixtures"]

# Property tests draw the same examples on every run, so the suite gives one answer per commit (a
# randomly drawn counterexample would fail one run and not the next). To search further, draw new
# ones: `python -m pytest --hypothesis-profile=explore` (random examples, failures remembered in .hypothesis/).
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile("ci")
