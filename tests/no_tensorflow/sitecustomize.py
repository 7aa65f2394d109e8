"""Makes TensorFlow and Keras unimportable, as on an install without ``terc-tag[train]``.

Put this folder first on PYTHONPATH: Python imports ``sitecustomize`` at
start-up, and the finder below refuses every module of those packages.
"""

import sys


class _Refuse:
    """A meta-path finder that fails the import of tensorflow and keras (and their submodules)."""

    blocked = ("tensorflow", "keras", "tf_keras")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ImportError(f"{name} is blocked: this process stands for an install without TensorFlow")
        return None


sys.meta_path.insert(0, _Refuse())
