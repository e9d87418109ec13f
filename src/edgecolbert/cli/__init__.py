"""The ``edgecolbert`` command line."""

from edgecolbert.cli.main import main

__all__ = ["main"]
