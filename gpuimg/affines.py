"""Homogeneous affine helpers with nibabel's API (``nibabel.affines``): apply, split, build, voxel sizes.

>>> aff = from_matvec(np.diag([2.0, 3.0, 4.0]), [10.0, 20.0, 30.0])
>>> apply_affine(aff, [1, 1, 1]).tolist()
[12.0, 23.0, 34.0]
>>> voxel_sizes(aff).tolist()
[2.0, 3.0, 4.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np


def apply_affine(aff: Any, pts: Any, inplace: bool = False) -> np.ndarray:
    """Apply the (N + 1, N + 1) affine ``aff`` to points ``pts`` whose last axis holds N coordinates.

    Parameters
    ----------
    aff : (N + 1, N + 1) array-like
    pts : (..., N) array-like
        Any leading shape; a 1-D ``pts`` is a single point.
    inplace : bool, optional
        Write the result into ``pts`` (which must then be a float array of the result's type).

    Returns
    -------
    ndarray
        Transformed points, the shape of ``pts``.
    """
    aff = np.asarray(aff)
    pts = np.asarray(pts)
    shape = pts.shape
    pts = pts.reshape((-1, shape[-1]))
    rzs, trans = aff[:-1, :-1], aff[:-1, -1]
    if inplace:
        pts[...] = pts @ rzs.T
        pts += trans
        return pts.reshape(shape)
    return (pts @ rzs.T + trans).reshape(shape)


def to_matvec(transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split a homogeneous ``transform`` into its matrix and translation vector."""
    transform = np.asarray(transform)
    ndimin, ndimout = transform.shape[0] - 1, transform.shape[1] - 1
    return transform[:ndimin, :ndimout], transform[:ndimin, ndimout]


def from_matvec(matrix: Any, vector: Any = None) -> np.ndarray:
    """The homogeneous affine of ``matrix`` (N, M) and translation ``vector`` (N,; zeros when None)."""
    matrix = np.asarray(matrix)
    nin, nout = matrix.shape
    transform = np.zeros((nin + 1, nout + 1), dtype=matrix.dtype)
    transform[:nin, :nout] = matrix
    transform[nin, nout] = 1
    if vector is not None:
        transform[:nin, nout] = vector
    return transform


def voxel_sizes(affine: Any) -> np.ndarray:
    """The length of each input axis' unit step in output space: the voxel sizes of an image affine."""
    top_left = np.asarray(affine)[:-1, :-1]
    return np.sqrt(np.sum(top_left**2, axis=0))
