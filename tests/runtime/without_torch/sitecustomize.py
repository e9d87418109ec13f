"""Makes torch and transformers unimportable in a process that has them installed.

Put this folder first on ``PYTHONPATH`` and Python runs it at start-up: every import of the two
(or of a submodule) then raises ImportError, as it would where they are not installed, while
``importlib.util.find_spec`` raises too instead of finding them.
"""

import sys

BLOCKED = ("torch", "transformers")


class _Blocked:
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname.partition(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} is blocked: this process stands for an install without it", name=fullname)
        return None


sys.meta_path.insert(0, _Blocked())
