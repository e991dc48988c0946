"""Drop-in faces for code written against other shared-array libraries.

- ndshm.compat.ndsharray: ``NdShArray(name, array=None, r_w='r'|'w')`` (ndsharray).
- ndshm.compat.sharedarray: ``create``, ``attach``, ``delete``, ``list`` (SharedArray).
"""
