"""Drop-in faces for programs written against other shared-array libraries.

=========================================  =================================================
face                                       the library it stands in for
=========================================  =================================================
``ndshm.compat.ndsharray``                 ndsharray: ``NdShArray``, ``supported_types``
``ndshm.compat.sharedarray``               SharedArray: ``create``, ``attach``, ``delete``,
                                           ``list``
``ndshm.compat.wea``                       wea: ``wea.shared_memory``, ``wea.buffered_memory``
``ndshm.compat.shared_memory``             shared_memory: ``SharedMemory``, layouts,
                                           ``create``, ``load``, ``unlink``
``ndshm.compat.shared_memory_wrapper``     shared_memory_wrapper: objects to and from shared
                                           memory and ``.npz`` files
=========================================  =================================================

Each face imports without pandas or xarray; the layouts that need them raise ImportError when
used. To run a program unchanged, put a face under the original name before the program
imports it::

    import ndshm.compat; ndshm.compat.alias("SharedArray")   # then: import SharedArray

or put ``python/compat-shims`` (installed: ``<prefix>/share/ndshm/python-compat-shims``) on
PYTHONPATH, where a package of each original name does exactly that.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Dict, Optional

__all__ = ["FACES", "alias"]

# original top-level name -> {original module name: face module}
FACES: Dict[str, Dict[str, str]] = {
    "ndsharray": {
        "ndsharray": "ndshm.compat.ndsharray",
        "ndsharray.ndsharray": "ndshm.compat.ndsharray",
    },
    "SharedArray": {"SharedArray": "ndshm.compat.sharedarray"},
    "wea": {
        "wea": "ndshm.compat.wea",
        "wea.shared_memory": "ndshm.compat.wea.shared_memory",
        "wea.buffered_memory": "ndshm.compat.wea.buffered_memory",
    },
    "shared_memory": {"shared_memory": "ndshm.compat.shared_memory"},
    "shared_memory_wrapper": {"shared_memory_wrapper": "ndshm.compat.shared_memory_wrapper"},
}


def alias(name: Optional[str] = None) -> Optional[ModuleType]:
    """Register the face of library `name` (e.g. "SharedArray") in sys.modules under the
    original module names, so that ``import SharedArray`` (and ``import wea.shared_memory``)
    gives the face. Without a name, all five. Returns the face's top-level module."""
    if name is None:
        for n in FACES:
            alias(n)
        return None
    try:
        modules = FACES[name]
    except KeyError:
        raise ValueError(f"no ndshm face for {name!r}; faces: {', '.join(FACES)}") from None
    top = None
    for original, face in modules.items():
        mod = importlib.import_module(face)
        sys.modules[original] = mod
        if original == name:
            top = mod
    for original in modules:  # `import a.b as m` also looks up attribute b of module a
        parent, _, child = original.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[original])
    return top
