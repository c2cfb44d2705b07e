"""Defers the GUI modules TensorFlow's Keras import drags into every command.

`import tensorflow` imports Keras, and Keras imports `matplotlib.pyplot` (for an
image-gallery helper) and `IPython` (to detect notebooks) whenever they are
installed. No nmt command needs them at start-up, yet they made `import tensorflow`
about 0.9 s slower on the 2-core benchmark machine. Installed before TensorFlow is
imported, this finder gives those modules a `importlib.util.LazyLoader`: each is
bound at once but executed on its first attribute access, so code that does use
them (nmt-plot) works unchanged.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import sys

LAZY_MODULES = ("matplotlib.pyplot", "matplotlib.patches", "IPython")


class LazyImportFinder(importlib.abc.MetaPathFinder):
    """Finds the named modules as the path finder would, with a lazy loader."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def install(names=LAZY_MODULES):
    """Puts the finder first on sys.meta_path once; modules already imported stay as they are."""
    if not any(isinstance(f, LazyImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, LazyImportFinder(names))
