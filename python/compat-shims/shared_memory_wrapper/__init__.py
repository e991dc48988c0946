"""`import shared_memory_wrapper` gives ndshm's face of it: ndshm.compat (docs/python.md)."""
import os
import sys

try:
    import ndshm.compat
except ImportError:  # a source tree: the package is two directories up (python/)
    sys.path.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    import ndshm.compat

ndshm.compat.alias("shared_memory_wrapper")
