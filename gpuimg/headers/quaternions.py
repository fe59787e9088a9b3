"""Unit quaternions and 3x3 rotation matrices, as the NIfTI qform uses them.

Quaternions are ``(w, x, y, z)`` arrays. NIfTI stores only ``x, y, z``
(``quatern_b, c, d``) and recovers ``w >= 0`` from the unit norm. The maths runs
in ``np.longdouble`` where that is wider than float64, so that values rebuilt
from float32 header fields match nibabel's to the last bit.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from gpuimg.errors import HeaderDataError

_FLOAT64_EPS = np.finfo(np.float64).eps


def fill_positive(xyz: ArrayLike, w2_threshold: float) -> np.ndarray:
    """Return the unit quaternion ``(w, x, y, z)`` with ``w >= 0`` from its vector part.

    Parameters
    ----------
    xyz : array-like, shape (3,)
        Vector part of a unit quaternion.
    w2_threshold : float
        ``|1 - |xyz|^2|`` below this is rounding error: ``w`` is set to 0.

    Returns
    -------
    wxyz : ndarray, shape (4,), dtype longdouble

    Raises
    ------
    HeaderDataError
        If ``|xyz| > 1`` by more than the threshold.

    Examples
    --------
    >>> fill_positive([0, 0, 0], 1e-6).astype(float).tolist()
    [1.0, 0.0, 0.0, 0.0]
    """
    vec = np.asarray(xyz, dtype=np.longdouble)
    if vec.shape != (3,):
        raise ValueError(f"xyz has shape {vec.shape}, expected (3,)")
    w2 = 1.0 - vec @ vec
    if abs(w2) < abs(w2_threshold):
        w = np.longdouble(0)
    elif w2 < 0:
        raise HeaderDataError(
            f"quaternion (b, c, d) = {tuple(float(v) for v in vec)} has norm > 1 "
            f"(1 - |bcd|^2 = {float(w2):e}), expected a unit quaternion"
        )
    else:
        w = np.sqrt(w2)
    return np.concatenate(([w], vec))


def quat_to_mat(wxyz: ArrayLike) -> np.ndarray:
    """Return the 3x3 rotation matrix of quaternion `wxyz` (normalised first).

    A quaternion with (near) zero norm gives the identity.
    """
    w, x, y, z = np.asarray(wxyz)
    norm2 = w * w + x * x + y * y + z * z
    if norm2 < _FLOAT64_EPS:
        return np.eye(3)
    s = 2.0 / norm2
    xs, ys, zs = x * s, y * s, z * s
    return np.array(
        [
            [1.0 - (y * ys + z * zs), x * ys - w * zs, x * zs + w * ys],
            [x * ys + w * zs, 1.0 - (x * xs + z * zs), y * zs - w * xs],
            [x * zs - w * ys, y * zs + w * xs, 1.0 - (x * xs + y * ys)],
        ]
    )


def mat_to_quat(rotation: ArrayLike) -> np.ndarray:
    """Return the unit quaternion ``(w, x, y, z)``, ``w >= 0``, nearest to a rotation matrix.

    Uses Bar-Itzhack's method: the quaternion is the eigenvector of the
    largest eigenvalue of a symmetric 4x4 matrix built from the entries, which
    also gives the best answer for a matrix that is not quite orthogonal.

    Examples
    --------
    >>> mat_to_quat(np.eye(3)).tolist()
    [1.0, 0.0, 0.0, 0.0]
    """
    m = np.asarray(rotation, dtype=np.float64)
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = m
    # Only the lower triangle is read by eigh.
    k = (
        np.array(
            [
                [r00 - r11 - r22, 0, 0, 0],
                [r01 + r10, r11 - r00 - r22, 0, 0],
                [r02 + r20, r12 + r21, r22 - r00 - r11, 0],
                [r21 - r12, r02 - r20, r10 - r01, r00 + r11 + r22],
            ]
        )
        / 3.0
    )
    values, vectors = np.linalg.eigh(k)
    quat = vectors[[3, 0, 1, 2], np.argmax(values)]
    return -quat if quat[0] < 0 else quat
