"""Axis orientations: which world axis each array axis runs along, and in which direction (nibabel's API).

An *orientation* ``ornt`` is a (p, 2) array: row ``i`` says that array axis ``i`` runs along world axis
``ornt[i, 0]``, in the positive (``1``) or negative (``-1``) direction; NaN rows are axes that map to no
world axis. *Axis codes* spell the same with one letter per axis, ``('R', 'A', 'S')`` being the
canonical RAS+ orientation. The functions give the same results as ``nibabel.orientations``.

Pure numpy, no image classes: ``apply_orientation`` works on numpy and on device (CuPy) arrays alike,
since it only flips (negative-step views) and transposes.

>>> aff2axcodes(np.diag([-2.0, 2.0, 2.0, 1.0]))
('L', 'A', 'S')
>>> ornt_transform(axcodes2ornt('LAS'), axcodes2ornt('RAS')).tolist()
[[0.0, -1.0], [1.0, 1.0], [2.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The default labels: (negative, positive) end of each world axis.
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


class OrientationError(Exception):
    """An orientation cannot be applied or inverted (dropped axes, too few array dimensions)."""


def io_orientation(affine: Any, tol: float | None = None) -> np.ndarray:
    """The orientation of the input (array) axes of ``affine`` relative to its output (world) axes.

    Zooms and shears are removed first; the closest orthogonal rotation of what is left (by singular
    value decomposition) decides, for each input axis, the output axis it changes most, choosing the
    best-determined input axes first and never giving one output axis twice.

    Parameters
    ----------
    affine : (q + 1, p + 1) array-like
        Homogeneous affine from p input axes to q output axes.
    tol : float or None, optional
        Singular values at or below ``tol`` count as zero (the input axis then maps to no output axis);
        default ``S.max() * max(RS.shape) * eps``.

    Returns
    -------
    ornt : (p, 2) ndarray
        ``[output axis, flip]`` per input axis; NaN rows for dropped axes.

    Examples
    --------
    >>> io_orientation(np.diag([3.0, -2.0, 1.0, 1.0])).tolist()
    [[0.0, 1.0], [1.0, -1.0], [2.0, 1.0]]
    """
    affine = np.asarray(affine)
    n_out, n_in = affine.shape[0] - 1, affine.shape[1] - 1
    rzs = affine[:n_out, :n_in]
    zooms = np.sqrt(np.sum(rzs * rzs, axis=0))
    zooms[zooms == 0] = 1
    rs = rzs / zooms
    left, singular, right = np.linalg.svd(rs, full_matrices=False)
    if tol is None:
        tol = singular.max() * max(rs.shape) * np.finfo(singular.dtype).eps
    keep = singular > tol
    rotation = left[:, keep] @ right[keep]
    ornt = np.full((n_in, 2), np.nan)
    # Input axes whose largest component is largest go first; ties keep axis order.
    for in_axis in np.argsort(np.min(-(rotation**2), axis=0), kind="stable"):
        column = rotation[:, in_axis]
        if np.allclose(column, 0):
            continue
        out_axis = int(np.argmax(np.abs(column)))
        ornt[in_axis] = out_axis, -1 if column[out_axis] < 0 else 1
        rotation[out_axis, :] = 0  # each output axis is taken once
    return ornt


def ornt_transform(start_ornt: Any, end_ornt: Any) -> np.ndarray:
    """The orientation that takes an array in ``start_ornt`` to ``end_ornt``.

    Raises
    ------
    ValueError
        If the orientations differ in shape or ``end_ornt`` uses an output axis ``start_ornt`` lacks.
    """
    start_ornt = np.asarray(start_ornt)
    end_ornt = np.asarray(end_ornt)
    if start_ornt.shape != end_ornt.shape:
        raise ValueError(
            f"The orientations must have the same shape, found {start_ornt.shape} and {end_ornt.shape}"
        )
    if start_ornt.ndim != 2 or start_ornt.shape[1] != 2:
        raise ValueError(f"Invalid shape for an orientation: {start_ornt.shape}, expected (p, 2)")
    result = np.empty_like(start_ornt)
    for end_in, (end_out, end_flip) in enumerate(end_ornt):
        matches = np.flatnonzero(start_ornt[:, 0] == end_out)
        if not matches.size:
            raise ValueError(f"Unable to find out axis {end_out} in start_ornt")
        start_in = matches[0]
        result[start_in] = end_in, 1 if start_ornt[start_in, 1] == end_flip else -1
    return result


def apply_orientation(arr: Any, ornt: Any) -> Any:
    """Flip and transpose the first axes of ``arr`` as ``ornt`` says (a view, no copy).

    Parameters
    ----------
    arr : array-like
        numpy arrays (and CuPy arrays, left on their device) are used as they are; anything else goes
        through ``np.asarray``.
    ornt : (p, 2) array-like
        Orientation of the first p axes; no NaN rows.

    Raises
    ------
    OrientationError
        If ``arr`` has fewer than p dimensions or ``ornt`` drops an axis.
    """
    t_arr = arr if hasattr(arr, "transpose") and hasattr(arr, "ndim") else np.asarray(arr)
    ornt = np.asarray(ornt)
    n_axes = ornt.shape[0]
    if t_arr.ndim < n_axes:
        raise OrientationError(
            f"Data array has fewer dimensions ({t_arr.ndim}) than orientation ({n_axes})"
        )
    if np.any(np.isnan(ornt[:, 0])):
        raise OrientationError("Cannot drop coordinates when applying orientation to data")
    flips = tuple(slice(None, None, -1) if flip == -1 else slice(None) for flip in ornt[:, 1])
    if any(step != slice(None) for step in flips):
        t_arr = t_arr[flips]
    order = list(range(t_arr.ndim))
    order[:n_axes] = np.argsort(ornt[:, 0]).tolist()
    return t_arr if order == sorted(order) else t_arr.transpose(order)


def inv_ornt_aff(ornt: Any, shape: Sequence[int]) -> np.ndarray:
    """The affine from the voxels of an array reoriented by ``ornt`` back to the voxels of the original.

    ``img.affine @ inv_ornt_aff(ornt, img.shape)`` is the affine of ``apply_orientation(data, ornt)``.

    Raises
    ------
    OrientationError
        If ``ornt`` has NaN rows (dropped axes cannot be inverted).
    """
    ornt = np.asarray(ornt)
    if np.any(np.isnan(ornt)):
        raise OrientationError("We cannot invert orientation transform")
    n_axes = ornt.shape[0]
    kept = np.array(shape)[:n_axes]
    undo_reorder = np.eye(n_axes + 1)[[int(v) for v in ornt[:, 0]] + [n_axes], :]
    undo_flip = np.diag([*ornt[:, 1], 1.0])
    centre = -(kept - 1) / 2.0
    undo_flip[:n_axes, n_axes] = ornt[:, 1] * centre - centre
    return undo_flip @ undo_reorder


def ornt2axcodes(ornt: Any, labels: Sequence[Sequence[str]] | None = None) -> tuple:
    """Axis codes (one label per axis, None for dropped axes) for the orientation ``ornt``.

    Raises
    ------
    ValueError
        For a non-integer axis number or a flip other than -1 or 1.
    """
    labels = RAS_LABELS if labels is None else labels
    codes: list[str | None] = []
    for axis, flip in np.asarray(ornt):
        if np.isnan(axis):
            codes.append(None)
            continue
        index = int(np.round(axis))
        if index != axis:
            raise ValueError(f"Non integer axis number {axis:f}")
        if flip not in (-1, 1):
            raise ValueError(f"Direction should be -1 or 1, found {flip}")
        codes.append(labels[index][1 if flip == 1 else 0])
    return tuple(codes)


def axcodes2ornt(axcodes: Sequence[str | None], labels: Sequence[Sequence[str]] | None = None):
    """The orientation for axis codes such as ``'RAS'`` or ``('L', 'P', None)``.

    Raises
    ------
    ValueError
        If ``labels`` repeat a label or ``axcodes`` use one not in ``labels``.
    """
    labels = RAS_LABELS if labels is None else labels
    allowed = [None, *(label for pair in labels for label in pair)]
    if len(allowed) != len(set(allowed)):
        raise ValueError(f"Duplicate labels in {allowed}")
    if not set(axcodes).issubset(allowed):
        raise ValueError(f"Not all axis codes {list(axcodes)} in label set {allowed}")
    ornt = np.full((len(axcodes), 2), np.nan)
    for index, code in enumerate(axcodes):
        for world_axis, pair in enumerate(labels):
            if code is not None and code in pair:
                ornt[index] = world_axis, -1 if code == pair[0] else 1
                break
    return ornt


def aff2axcodes(aff: Any, labels: Sequence[Sequence[str]] | None = None, tol: float | None = None):
    """Axis codes of the affine ``aff`` (see :func:`io_orientation`)."""
    return ornt2axcodes(io_orientation(aff, tol), labels)
