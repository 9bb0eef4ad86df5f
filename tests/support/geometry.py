"""Comparing a volume medviewer read with a reference reading of the same file, voxel by voxel in world space."""

from __future__ import annotations

import numpy as np

from medviewer.core.volume import Volume


def assert_same_in_world(ours: Volume, reference: Volume) -> np.ndarray:
    """Every reference voxel centre is one of our voxel centres; returns our values there, in reference order.

    The two may store their axes in different orders and directions, so voxels are matched through
    their LPS positions, never through array indices.
    """
    index = np.indices(reference.shape).reshape(3, -1).T
    ours_index = ours.world_to_index(reference.index_to_world(index))
    rounded = np.rint(ours_index).astype(int)
    assert np.abs(ours_index - rounded).max() < 0.01, "voxel centres do not coincide"
    assert (rounded >= 0).all() and (rounded < np.array(ours.shape)).all(), "reference voxels outside our volume"
    assert np.prod(ours.shape) == np.prod(reference.shape)
    return ours.array[rounded[:, 0], rounded[:, 1], rounded[:, 2]].reshape(reference.shape)
