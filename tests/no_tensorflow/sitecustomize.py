"""Makes TensorFlow and Keras unimportable, as on an install without ``terc-tag[train]``.

Put this folder first on PYTHONPATH: Python imports ``sitecustomize`` at
start-up, and the finder below refuses every module of the packages named in
``TERC_TAG_TEST_BLOCK`` (comma-separated; default ``tensorflow,keras``), so a
test can also show that a run never touches OpenVINO.
"""

import os
import sys


class _Refuse:
    """A meta-path finder that fails the import of the blocked packages (and their submodules)."""

    blocked = tuple(os.environ.get("TERC_TAG_TEST_BLOCK", "tensorflow,keras").split(","))

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"No module named {name!r} (blocked: this process stands for an install without it)")
        return None


sys.meta_path.insert(0, _Refuse())
