"""Multiplanar reformatting: which voxels each of the three views shows, and where they sit.

A view draws a 2-D slice with row 0 at the top, in display millimetres (u to the right, v down), with
pixel (row, col) covering [col*su, (col+1)*su] x [row*sv, (row+1)*sv]. Volumes reach the viewer
reoriented to the nearest LPS axes, so the radiological conventions fall out of the array order:
axial shows the patient's right on the screen's left and anterior at the top; coronal and sagittal
put superior at the top (rows run down the z axis), sagittal has anterior on the left. Every mapping
between a view's pixels and the volume's (z, y, x) index lives here, so views, crosshair, probe and
measurements cannot disagree about where a voxel is.
"""

from __future__ import annotations

import enum

import numpy as np


class Plane(enum.Enum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"

    @property
    def axis(self) -> int:
        """The array axis (z=0, y=1, x=2) that the view steps through."""
        return {Plane.AXIAL: 0, Plane.CORONAL: 1, Plane.SAGITTAL: 2}[self]


def slice_count(shape: tuple[int, ...], plane: Plane) -> int:
    return int(shape[plane.axis])


def extract(array: np.ndarray, plane: Plane, k: int) -> np.ndarray:
    """The 2-D slice a view draws (rows top to bottom); a view of ``array``, not a copy."""
    if plane is Plane.AXIAL:
        return array[k, :, :]
    if plane is Plane.CORONAL:
        return array[::-1, k, :]
    return array[::-1, :, k]


def pixel_size(spacing_xyz: tuple[float, float, float], plane: Plane) -> tuple[float, float]:
    """(su, sv): millimetres per column and per row on screen."""
    sx, sy, sz = spacing_xyz
    if plane is Plane.AXIAL:
        return sx, sy
    if plane is Plane.CORONAL:
        return sx, sz
    return sy, sz


def to_index(shape: tuple[int, ...], plane: Plane, k: float, row: float, col: float) -> np.ndarray:
    """Volume index (z, y, x) of a view's slice ``k`` at (row, col); fractional values allowed."""
    top = shape[0] - 1
    if plane is Plane.AXIAL:
        return np.array([k, row, col], dtype=float)
    if plane is Plane.CORONAL:
        return np.array([top - row, k, col], dtype=float)
    return np.array([top - row, col, k], dtype=float)


def from_index(shape: tuple[int, ...], plane: Plane, zyx: np.ndarray) -> tuple[float, float, float]:
    """(k, row, col) at which a view shows volume index ``zyx``; the inverse of ``to_index``."""
    z, y, x = (float(v) for v in zyx)
    top = shape[0] - 1
    if plane is Plane.AXIAL:
        return z, y, x
    if plane is Plane.CORONAL:
        return y, top - z, x
    return x, top - z, y


def display_to_index(
    shape: tuple[int, ...], spacing_xyz: tuple[float, float, float], plane: Plane, k: float, u: float, v: float
) -> np.ndarray:
    """Volume index under display millimetres (u, v) on slice ``k`` (pixel centres at half steps)."""
    su, sv = pixel_size(spacing_xyz, plane)
    return to_index(shape, plane, k, v / sv - 0.5, u / su - 0.5)


def index_to_display(
    shape: tuple[int, ...], spacing_xyz: tuple[float, float, float], plane: Plane, zyx: np.ndarray
) -> tuple[float, float, float]:
    """(k, u, v): the slice showing ``zyx`` and the display millimetres of its centre."""
    su, sv = pixel_size(spacing_xyz, plane)
    k, row, col = from_index(shape, plane, zyx)
    return k, (col + 0.5) * su, (row + 0.5) * sv


def screen_axes(direction: np.ndarray, plane: Plane) -> tuple[np.ndarray, np.ndarray]:
    """LPS unit vectors pointing to the screen's right and down in a view."""
    x, y, z = (np.asarray(direction, float)[:, i] for i in range(3))
    if plane is Plane.AXIAL:
        return x, y
    if plane is Plane.CORONAL:
        return x, -z
    return y, -z


#: The patient direction each LPS axis points to, for negative and positive components.
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))
OBLIQUE_COMPONENT = 0.25  # a secondary letter is shown when a component is at least this large


def orientation_letters(vector: np.ndarray) -> str:
    """Patient direction of an LPS vector: 'L', or 'LA' for oblique data (largest component first)."""
    vector = np.asarray(vector, float)
    order = np.argsort(-np.abs(vector))
    return "".join(
        _LETTERS[axis][int(vector[axis] > 0)] for axis in order[:2] if abs(vector[axis]) >= OBLIQUE_COMPONENT
    )


def edge_letters(direction: np.ndarray, plane: Plane) -> dict[str, str]:
    """Letters for the left, right, top and bottom edges of a view."""
    right, down = screen_axes(direction, plane)
    return {
        "left": orientation_letters(-right),
        "right": orientation_letters(right),
        "top": orientation_letters(-down),
        "bottom": orientation_letters(down),
    }


#: The opposite of each patient direction in PatientOrientation (PS3.3 C.7.6.1.1.1): the file names only the
#: directions of the rows and columns, so the left and top edges are these opposites.
_OPPOSITE_DIRECTION = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def opposite_direction(letters: str) -> str:
    """'R' for 'L', 'HL' for 'FR'; '' when a letter is not one of the six patient directions, so an edge is
    left blank rather than given a guessed direction (e.g. the anatomical codes of veterinary images)."""
    if not letters or any(letter not in _OPPOSITE_DIRECTION for letter in letters):
        return ""
    return "".join(_OPPOSITE_DIRECTION[letter] for letter in letters)


def patient_orientation_letters(row_direction: str, column_direction: str) -> dict[str, str]:
    """Edge letters of a 2-D image from its PatientOrientation: rows run to the right, columns down."""
    row, column = row_direction.strip().upper(), column_direction.strip().upper()
    return {"left": opposite_direction(row), "right": row, "top": opposite_direction(column), "bottom": column}
