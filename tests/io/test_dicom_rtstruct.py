"""RT Structure Sets laid on volumes: every labelled voxel inside its ROI's polygon, every loss reported.

pydicom's rtstruct.dcm references a CT series that is not shipped, so the reference volumes here are
grids built over the file's own contours, in its own frame of reference; a real MR series carries the
same contours drawn across its real geometry. Expected voxels come from an independent even-odd
ray-casting test at voxel centres, in millimetres.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut
from pydicom.sequence import Sequence

from medviewer.core.errors import CorruptFileError, MedviewerError, UnsupportedFileError
from medviewer.core.volume import Volume
from medviewer.io import dicom_seg, open_volume
from medviewer.io.dicom_rtstruct import read_rtstruct, referenced_series_uids
from medviewer.io.dicom_series import read_dataset, read_header, scan_files
from medviewer.io.label_maps import open_label_map, referenced_series
from tests.support.paths import pydicom_file, real_file

SLICE_MM = 10.0
PIXEL_MM = 3.0
#: Voxel centres sit 4.3 mm outside the contours' extremes, so none lies on a polygon edge.
MARGIN_MM = 4.3


def rtstruct_path() -> Path:
    return pydicom_file("rtstruct.dcm")


def rt_dataset() -> Dataset:
    return pydicom.dcmread(rtstruct_path(), force=True)


def file_frame(ds: Dataset) -> str:
    return str(ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID)


def contours_mm(ds: Dataset) -> dict[int, list[tuple[str, np.ndarray]]]:
    """ROI number -> (geometric type, (n, 3) LPS points) of each of its contours, straight from the file."""
    return {
        int(roi.ReferencedROINumber): [
            (str(c.ContourGeometricType), np.asarray(c.ContourData, dtype=float).reshape(-1, 3))
            for c in roi.get("ContourSequence") or []
        ]
        for roi in ds.ROIContourSequence
    }


def grid_over(ds: Dataset, z_offset_mm: float = 0.0, frame: str | None = None) -> Volume:
    """An axial grid covering every contour of ``ds``: slices every 10 mm through the contours' planes."""
    points = np.concatenate([p for contours in contours_mm(ds).values() for _, p in contours])
    low, high = points.min(axis=0), points.max(axis=0)
    origin = np.array([low[0] - MARGIN_MM, low[1] - MARGIN_MM, low[2] + z_offset_mm - SLICE_MM])
    size_xyz = (
        np.ceil((high + MARGIN_MM + SLICE_MM - origin) / np.array([PIXEL_MM, PIXEL_MM, SLICE_MM])).astype(int) + 1
    )
    return Volume(
        array=np.zeros(tuple(size_xyz[::-1]), dtype=np.int16),
        spacing=(PIXEL_MM, PIXEL_MM, SLICE_MM),
        origin=tuple(origin),
        metadata={"frame_of_reference_uid": frame if frame is not None else file_frame(ds)},
    )


def inside_polygon(points_2d: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd ray casting: whether each point lies inside the closed polygon (rays towards +x)."""
    x, y = points_2d[:, 0][:, None], points_2d[:, 1][:, None]
    x1, y1 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x2, y2 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return (np.count_nonzero(straddles & (x < crossing_x), axis=1) % 2) == 1


def distance_to_edges(points_2d: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    start, end = polygon, np.roll(polygon, -1, axis=0)
    edge = end - start
    t = np.clip(
        np.einsum("pek,ek->pe", points_2d[:, None, :] - start[None], edge) / np.maximum((edge**2).sum(1), 1e-12), 0, 1
    )
    nearest = start[None] + t[..., None] * edge[None]
    return np.linalg.norm(points_2d[:, None, :] - nearest, axis=2).min(axis=1)


def expected_axial(volume: Volume, contours: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Voxels whose centre is inside an axial contour of the nearest slice (even-odd across a slice's contours)."""
    expected = np.zeros(volume.shape, dtype=bool)
    for _, points in contours:
        k = int(round(float(volume.world_to_index(points[0])[0])))
        plane = np.indices(volume.shape[1:]).reshape(2, -1).T
        centres = volume.index_to_world(np.column_stack([np.full(len(plane), k), plane]))
        inside = inside_polygon(centres[:, :2], points[:, :2]).reshape(volume.shape[1:])
        assert distance_to_edges(centres[:, :2], points[:, :2]).min() > 0.1, "a voxel centre on an edge: move the grid"
        expected[k] ^= inside
    return expected


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path)
    return path


def test_a_structure_set_without_preamble_is_read_as_dicom(tmp_path: Path):
    path = rtstruct_path()
    assert path.read_bytes()[128:132] != b"DICM"
    header = read_header(path)
    assert header.Modality == "RTSTRUCT"
    assert header.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3"
    found = scan_files([path])
    assert found.not_dicom == 0 and [f.path for files in found.objects.values() for f in files] == [path]
    assert read_header(pydicom_file("ExplVR_LitEndNoMeta.dcm")).Modality == "RTPLAN"


def test_an_image_without_file_meta_opens_with_the_encoding_it_was_read_in():
    """pydicom-data's palette face has neither preamble nor file meta: its pixels decode as implicit VR."""
    path = pydicom_file("OT-PAL-8-face.dcm")
    assert path.read_bytes()[128:132] != b"DICM"
    volume = open_volume(path)
    ds = pydicom.dcmread(path, force=True)
    assert "TransferSyntaxUID" not in ds.file_meta
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    expected = apply_color_lut(ds.pixel_array, ds)  # 16-bit palette entries: 0 to 65280 here
    assert volume.colour is not None and volume.colour.shape == (1, *expected.shape)
    np.testing.assert_array_equal(volume.colour[0], expected >> 8)


@pytest.mark.parametrize(
    "content",
    [
        b"scanned on the old machine\n",
        json.dumps({"PatientName": "Doe^Jane", "Modality": "CT"}).encode(),
        bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8)),
        b"\x08\x00\x05\x00" + bytes(np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8)),
        b"\x08\x00\x16\x00UI\x04\x001.2\x00" + b"\x00" * 5000,  # a SOP class, but no Modality or instance UID
        b"\x08\x00\x16\x00UI\x06\x00hello\x00\x08\x00\x60\x00CS\x02\x00CT",  # a "SOP class" that is no UID
    ],
    ids=["text", "json", "random", "group-8-then-random", "no-identity", "not-a-uid"],
)
def test_files_that_are_not_dicom_are_still_refused(tmp_path: Path, content: bytes):
    path = tmp_path / "not-dicom.dcm"
    path.write_bytes(content)
    with pytest.raises(UnsupportedFileError, match="not a DICOM file") as caught:
        read_dataset(path)
    assert caught.value.path == path


def test_a_huge_file_that_starts_like_dicom_is_refused_without_reading_it(tmp_path: Path):
    path = tmp_path / "video.dcm"
    with open(path, "wb") as handle:
        handle.write(b"\x08\x00\x16\x00\xff\xff\xff\xff")  # an implicit VR element of undefined length
        handle.truncate(4 << 30)  # 4 GiB, sparse: a parse of the whole would take far longer than allowed
    start = time.monotonic()
    with pytest.raises(UnsupportedFileError, match="not a DICOM file"):
        read_header(path)
    assert time.monotonic() - start < 2


def test_each_roi_lands_inside_its_polygons_with_its_name_and_colour():
    ds = rt_dataset()
    volume = grid_over(ds)
    label_map = read_rtstruct(rtstruct_path(), volume)
    names = {int(roi.ROINumber): str(roi.ROIName) for roi in ds.StructureSetROISequence}
    colours = {
        int(roi.ReferencedROINumber): tuple(int(v) for v in roi.ROIDisplayColor) for roi in ds.ROIContourSequence
    }
    assert names == {1: "patient", 2: "Isocenter 1", 3: "Isocenter 2"}
    assert label_map.names == names
    assert label_map.colours == colours
    assert label_map.source == "rtstruct.dcm"
    assert label_map.array.shape == volume.shape

    contours = contours_mm(ds)
    expected_patient = expected_axial(volume, contours[1])
    assert expected_patient.sum() > 30000
    np.testing.assert_array_equal(label_map.array == 1, expected_patient)
    labelled_slices = set(np.flatnonzero((label_map.array == 1).any(axis=(1, 2))))
    assert labelled_slices == {int(round(volume.world_to_index(p[0])[0])) for _, p in contours[1]}

    # both isocentres are single points at the same place: the later ROI is shown, the hidden one is named
    point = contours[2][0][1][0]
    assert np.array_equal(point, contours[3][0][1][0])
    nearest = tuple(np.rint(volume.world_to_index(point)).astype(int))
    assert label_map.array[nearest] == 3
    assert label_map.voxel_counts() == {1: int(expected_patient.sum()), 3: 1}
    assert label_map.warnings == [
        "ROIs 'Isocenter 1' and 'Isocenter 2' overlap in 1 voxel(s); 'Isocenter 2' is shown there (smaller ROIs are "
        "drawn over larger ones)",
        "ROI 'Isocenter 1' is entirely covered by other ROIs and cannot be seen",
    ]


def test_open_label_map_accepts_a_structure_set_and_names_its_series():
    ds = rt_dataset()
    volume = grid_over(ds)
    label_map = open_label_map(rtstruct_path(), volume)
    np.testing.assert_array_equal(label_map.array, read_rtstruct(rtstruct_path(), volume).array)
    series = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence
    assert referenced_series_uids(ds) == [str(series[0].SeriesInstanceUID)]
    assert referenced_series(rtstruct_path()) == [str(series[0].SeriesInstanceUID)]


def test_a_seg_names_the_series_it_was_made_on():
    path = real_file("highdicom/seg_image_ct_binary.dcm")
    ds = pydicom.dcmread(path)
    expected = [str(item.SeriesInstanceUID) for item in ds.ReferencedSeriesSequence]
    assert expected and dicom_seg.referenced_series_uids(ds) == expected
    assert referenced_series(path) == expected


def test_a_structure_set_on_another_series_is_placed_with_a_warning():
    ds = rt_dataset()
    volume = grid_over(ds)
    volume.metadata["series_uid"] = "1.2.3.4.5.6"
    label_map = read_rtstruct(rtstruct_path(), volume)
    assert (
        label_map.warnings[0]
        == "the structure set was drawn on another series; it is placed by position in the patient"
    )
    assert label_map.voxel_counts()[1] > 30000


def test_contours_between_slices_go_to_the_nearest_slice_with_a_warning():
    ds = rt_dataset()
    volume = grid_over(ds, z_offset_mm=3.0)  # slices 3 mm above each contour's plane
    label_map = read_rtstruct(rtstruct_path(), volume)
    assert "3 contour(s) lie between the volume's slices (up to 3.00 mm away); drawn on the nearest slice" in (
        label_map.warnings
    )
    np.testing.assert_array_equal(label_map.array == 1, expected_axial(volume, contours_mm(ds)[1]))


def test_a_ring_drawn_as_two_nested_contours_has_a_hole(tmp_path: Path):
    ds = rt_dataset()
    inner = copy.deepcopy(ds.ROIContourSequence[0].ContourSequence[0])
    square = np.asarray(inner.ContourData, dtype=float).reshape(-1, 3)
    square[:, :2] *= 0.5
    inner.ContourData = [f"{v:.1f}" for v in square.ravel()]
    ds.ROIContourSequence[0].ContourSequence.append(inner)
    volume = grid_over(ds)
    label_map = read_rtstruct(save(ds, tmp_path / "ring.dcm"), volume)
    contours = contours_mm(ds)[1]
    expected = expected_axial(volume, contours)
    k = int(round(float(volume.world_to_index(square[0])[0])))
    centre = tuple(np.rint(volume.world_to_index([0.0, 0.0, square[0, 2]])).astype(int))
    assert centre[0] == k and label_map.array[centre] == 0  # the hole
    np.testing.assert_array_equal(label_map.array == 1, expected)


def test_a_contour_with_two_points_is_drawn_as_a_line_and_reported(tmp_path: Path):
    ds = rt_dataset()
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    contour.ContourData = list(contour.ContourData)[:6]
    contour.NumberOfContourPoints = 2
    volume = grid_over(ds)
    label_map = read_rtstruct(save(ds, tmp_path / "two-points.dcm"), volume)
    assert (
        "ROI 'patient': 1 closed contour(s) have fewer than 3 distinct points or all their points on a line, so they "
        "enclose no area; only their points are drawn"
    ) in label_map.warnings
    ends = np.asarray(contour.ContourData, dtype=float).reshape(2, 3)
    k = int(round(float(volume.world_to_index(ends[0])[0])))
    line = np.argwhere(label_map.array[k] == 1)
    assert len(line) == int(round(abs(ends[1, 1] - ends[0, 1]) / PIXEL_MM)) + 1  # one voxel per row along the line
    mm = volume.index_to_world(np.column_stack([np.full(len(line), k), line]))
    assert np.all(np.abs(mm[:, 0] - ends[0, 0]) <= PIXEL_MM / 2)


def test_contours_outside_the_volume_are_reported_not_dropped(tmp_path: Path):
    ds = rt_dataset()
    volume = grid_over(ds)
    contours = ds.ROIContourSequence[0].ContourSequence
    far = np.asarray(contours[1].ContourData, dtype=float).reshape(-1, 3)
    far[:, 2] += 1000.0
    contours[1].ContourData = [f"{v:.1f}" for v in far.ravel()]
    beyond = np.asarray(contours[2].ContourData, dtype=float).reshape(-1, 3)
    beyond[:, 0] += 100.0
    contours[2].ContourData = [f"{v:.1f}" for v in beyond.ravel()]
    label_map = read_rtstruct(save(ds, tmp_path / "outside.dcm"), volume)
    assert "ROI 'patient': 1 contour(s) lie outside the volume and are not shown" in label_map.warnings
    assert "ROI 'patient': 1 contour(s) reach beyond the volume's edge; only the part inside is shown" in (
        label_map.warnings
    )
    first = np.asarray(contours[0].ContourData, dtype=float).reshape(-1, 3)
    expected = expected_axial(volume, [("CLOSED_PLANAR", first), ("CLOSED_PLANAR", beyond)])  # cut at the edge
    np.testing.assert_array_equal(label_map.array == 1, expected)
    assert expected[:, :, -1].any()  # the shifted contour does reach the last column


def test_a_structure_set_entirely_outside_the_volume_is_refused(tmp_path: Path):
    ds = rt_dataset()
    volume = grid_over(ds)
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            moved = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3) + [0.0, 0.0, 2000.0]
            contour.ContourData = [f"{v:.1f}" for v in moved.ravel()]
    path = save(ds, tmp_path / "elsewhere.dcm")
    with pytest.raises(MedviewerError, match="outside this volume") as caught:
        read_rtstruct(path, volume)
    assert caught.value.path == path


def test_another_frame_of_reference_is_refused(tmp_path: Path):
    ds = rt_dataset()
    volume = grid_over(ds)
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = "1.2.3.999"
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = "1.2.3.999"
    path = save(ds, tmp_path / "other-frame.dcm")
    with pytest.raises(MedviewerError, match="frame of reference") as caught:
        open_label_map(path, volume)
    assert caught.value.path == path and str(path) in str(caught.value)


def test_one_roi_in_another_frame_of_reference_is_left_out_with_a_warning(tmp_path: Path):
    ds = rt_dataset()
    volume = grid_over(ds)
    ds.StructureSetROISequence[1].ReferencedFrameOfReferenceUID = "1.2.3.999"
    label_map = read_rtstruct(save(ds, tmp_path / "mixed-frames.dcm"), volume)
    assert (
        "ROI 'Isocenter 1' belongs to another coordinate system (frame of reference) than this volume and is not shown"
        in label_map.warnings
    )
    assert set(label_map.names) == {1, 3}


def test_a_structure_set_with_no_contours_is_refused(tmp_path: Path):
    ds = rt_dataset()
    for roi in ds.ROIContourSequence:
        del roi.ContourSequence
    path = save(ds, tmp_path / "empty.dcm")
    with pytest.raises(MedviewerError, match="no contours") as caught:
        open_label_map(path, grid_over(rt_dataset()))
    assert caught.value.path == path


def test_unusable_contours_are_a_corrupt_file_naming_it(tmp_path: Path):
    ds = rt_dataset()
    for roi in ds.ROIContourSequence:
        for contour in roi.ContourSequence:
            contour.ContourData = ["1.0", "2.0"]  # not x, y, z triplets
    path = save(ds, tmp_path / "pairs.dcm")
    with pytest.raises(CorruptFileError, match="no usable coordinates") as caught:
        read_rtstruct(path, grid_over(rt_dataset()))
    assert caught.value.path == path


def test_a_contour_across_the_slices_is_drawn_on_its_plane_and_reported(tmp_path: Path):
    """A square tilted 20 degrees about the y axis: one voxel per column, the one nearest the plane."""
    ds = rt_dataset()
    tilt = np.tan(np.radians(20.0))
    square = np.array([[-60.0, -45.0], [60.0, -45.0], [60.0, 45.0], [-60.0, 45.0]])
    points = np.column_stack([square, -100.0 + tilt * square[:, 0]])
    roi = ds.ROIContourSequence[0]
    roi.ContourSequence = Sequence([roi.ContourSequence[0]])
    roi.ContourSequence[0].ContourData = [f"{v:.4f}" for v in points.ravel()]
    roi.ContourSequence[0].NumberOfContourPoints = 4
    volume = grid_over(ds)
    volume = Volume(  # finer slices, so the tilt crosses several of them
        array=np.zeros((volume.shape[0] * 4, *volume.shape[1:]), np.int16),
        spacing=(PIXEL_MM, PIXEL_MM, SLICE_MM / 4),
        origin=volume.origin,
        metadata=volume.metadata,
    )
    label_map = read_rtstruct(save(ds, tmp_path / "tilted.dcm"), volume)
    assert "1 contour(s) are not parallel to the volume's slices; each is drawn at the voxels nearest its plane" in (
        label_map.warnings
    )
    voxels = np.argwhere(label_map.array == 1)
    mm = volume.index_to_world(voxels)
    assert np.all(inside_polygon(mm[:, :2], square))
    assert np.all(np.abs(mm[:, 2] - (-100.0 + tilt * mm[:, 0])) <= volume.spacing[2] / 2 + 1e-6)
    columns = {(y, x) for _, y, x in voxels}
    assert len(columns) == len(voxels)  # one voxel per column: a surface, not a slab
    plane = np.indices(volume.shape[1:]).reshape(2, -1).T
    centres = volume.index_to_world(np.column_stack([np.zeros(len(plane)), plane]))
    assert len(columns) == int(inside_polygon(centres[:, :2], square).sum())


def test_a_sagittal_contour_on_an_axial_volume_is_filled_in_its_plane_and_reported(tmp_path: Path):
    ds = rt_dataset()
    rectangle = np.array([[-100.0, -195.0], [100.0, -195.0], [100.0, -25.0], [-100.0, -25.0]])  # (y, z)
    points = np.column_stack([np.full(4, 10.0), rectangle])
    roi = ds.ROIContourSequence[0]
    roi.ContourSequence = Sequence([roi.ContourSequence[0]])
    roi.ContourSequence[0].ContourData = [f"{v:.1f}" for v in points.ravel()]
    roi.ContourSequence[0].NumberOfContourPoints = 4
    volume = grid_over(rt_dataset())
    label_map = read_rtstruct(save(ds, tmp_path / "sagittal.dcm"), volume)
    assert "1 contour(s) are not parallel to the volume's slices; each is drawn at the voxels nearest its plane" in (
        label_map.warnings
    )
    column = int(round(float(volume.world_to_index(points[0])[2])))
    expected = np.zeros(volume.shape, dtype=bool)
    plane = np.indices((volume.shape[0], volume.shape[1])).reshape(2, -1).T
    centres = volume.index_to_world(np.column_stack([plane, np.full(len(plane), column)]))
    expected[:, :, column] = inside_polygon(centres[:, 1:], rectangle).reshape(volume.shape[:2])
    assert expected.sum() > 300
    np.testing.assert_array_equal(label_map.array == 1, expected)


def test_roi_numbers_too_large_for_labels_become_their_place_in_the_file(tmp_path: Path):
    ds = rt_dataset()
    for roi, contour in zip(ds.StructureSetROISequence, ds.ROIContourSequence, strict=True):
        roi.ROINumber = int(roi.ROINumber) + 100_000
        contour.ReferencedROINumber = roi.ROINumber
    for observation in ds.RTROIObservationsSequence:
        observation.ReferencedROINumber = int(observation.ReferencedROINumber) + 100_000
    label_map = read_rtstruct(save(ds, tmp_path / "big-numbers.dcm"), grid_over(ds))
    assert label_map.names == {1: "patient", 2: "Isocenter 1", 3: "Isocenter 2"}
    assert label_map.warnings[0] == (
        "ROI numbers 100001, 100002, 100003 cannot be label values (1 to 65535); the ROIs are labelled 1 to 3 in the "
        "file's order"
    )


def test_an_image_is_not_a_structure_set():
    path = pydicom_file("CT_small.dcm")
    with pytest.raises(UnsupportedFileError, match="not an RT structure set") as caught:
        read_rtstruct(path, grid_over(rt_dataset()))
    assert caught.value.path == path
    with pytest.raises(UnsupportedFileError, match="CT Image Storage, not a segmentation") as caught:
        open_label_map(path, grid_over(rt_dataset()))
    assert caught.value.path == path


def test_text_is_not_a_label_map(tmp_path: Path):
    path = tmp_path / "notes.dcm"
    path.write_text("contours to follow\n")
    with pytest.raises(UnsupportedFileError, match="not a label map medviewer opens") as caught:
        open_label_map(path, grid_over(rt_dataset()))
    assert caught.value.path == path and "RT structure set" in caught.value.reason


@pytest.fixture(scope="module")
def mr(xa30i_dir: Path) -> Volume:
    return open_volume(xa30i_dir)


def test_contours_land_at_their_millimetres_on_a_real_mr(mr: Volume, tmp_path: Path):
    """An axial square and a tilted one, drawn in the MR's frame of reference, across its real geometry."""
    ds = rt_dataset()
    ds.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = mr.metadata["frame_of_reference_uid"]
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = mr.metadata["frame_of_reference_uid"]
    centre = mr.index_to_world((np.asarray(mr.shape) - 1) / 2)
    square = np.array([[-30.0, -20.0], [30.0, -20.0], [30.0, 20.0], [-30.0, 20.0]]) + centre[:2]
    axial = np.column_stack([square, np.full(4, centre[2] + 0.3)])
    tilt = np.tan(np.radians(30.0))
    tilted = np.column_stack([square, centre[2] + 40.0 + tilt * (square[:, 1] - centre[1])])
    for roi, points in zip(ds.ROIContourSequence[:2], (axial, tilted), strict=True):
        roi.ContourSequence = Sequence([copy.deepcopy(ds.ROIContourSequence[0].ContourSequence[0])])
        roi.ContourSequence[0].ContourGeometricType = "CLOSED_PLANAR"
        roi.ContourSequence[0].ContourData = [f"{v:.4f}" for v in points.ravel()]
        roi.ContourSequence[0].NumberOfContourPoints = 4
    del ds.ROIContourSequence[2]
    del ds.StructureSetROISequence[2]
    label_map = open_label_map(save(ds, tmp_path / "on-mr.dcm"), mr)
    assert label_map.names == {1: "patient", 2: "Isocenter 1"}
    half_voxel = np.abs(mr.direction * np.asarray(mr.spacing)[None, :]).sum(axis=1) / 2  # (x, y, z) mm
    area_voxels = 60.0 * 40.0 / (mr.spacing[0] * mr.spacing[1])
    for label, points in ((1, axial), (2, tilted)):
        mm = mr.index_to_world(np.argwhere(label_map.array == label))
        plane_z = centre[2] + 40.0 + tilt * (mm[:, 1] - centre[1]) if label == 2 else points[0, 2]
        assert np.all(np.abs(mm[:, 2] - plane_z) <= half_voxel[2] + 0.05)
        grown = square + np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half_voxel[:2]
        assert np.all(inside_polygon(mm[:, :2], grown))
        assert len(mm) == round(area_voxels)  # one voxel per column of the 60 x 40 mm square
