"""Worker functions for the multiprocessing tests of shared arrays (test_array.py). A module of
its own so that spawned workers can import it by name."""

import numpy as np

import ndshm


def fill_row(args):
    """Attach to the array by name and fill row `row` with row * 1000 + column."""
    name, row = args
    a = ndshm.attach_array(name)
    a[row, :] = row * 1000 + np.arange(a.shape[1], dtype=a.dtype)
    return row, float(a[row].sum())
