"""A model's input from a volume: window, scaling, spacing, size, channels; and a heatmap laid back on a slice."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.ai.package import IntensityScale, IntensityWindow, ModelSpec
from medviewer.ai.preprocess import input_to_slice, slice_batch, spacing_size, volume_input
from medviewer.core.volume import Volume

#: (x, y, z): columns 0.5 mm apart, rows 0.4 mm, slices 2 mm.
SPACING = (0.5, 0.4, 2.0)


def spec(**changes) -> ModelSpec:
    fields = {
        "target": "slice",
        "shape": (16, 16),
        "channels": 1,
        "spacing_mm": None,
        "mpp": None,
        "intensity": None,
        "activation": "softmax",
        "classes": ("normal", "lesion"),
        "explain": None,
        "diagnostic_use": False,
    }
    return ModelSpec(**{**fields, **changes})


def volume(array: np.ndarray) -> Volume:
    return Volume(array=array, spacing=SPACING, origin=(-10.0, 5.0, 30.0))


def test_window_maps_its_ends_to_0_and_1_clips_and_resizes():
    array = np.zeros((3, 40, 48), dtype=np.int16)
    for block, value in enumerate((-2000, -1000, 400, 1000)):
        array[:, :, block * 12 : (block + 1) * 12] = value
    array[1] = -1000
    batch = slice_batch(volume(array), [2, 1], spec(channels=3, intensity=IntensityWindow(-1000, 400)))
    assert batch.shape == (2, 3, 16, 16) and batch.dtype == np.float32
    assert np.array_equal(batch[:, 0], batch[:, 2])  # the grey image in every channel
    first = batch[0, 0]
    assert np.all(first[:, :5] == 0) and np.all(first[:, -5:] == 1)  # -2000 clipped, -1000 -> 0; 400 and 1000 -> 1
    assert first.min() == 0 and first.max() == 1
    assert np.all(batch[1] == 0)  # the second index asked for is slice 1, all -1000


def test_without_intensity_values_stay_as_read():
    array = np.full((1, 16, 16), 123.5, dtype=np.float32)
    assert np.all(slice_batch(volume(array), [0], spec()) == 123.5)


def test_scale_divides_by_max_then_standardises_each_channel():
    array = np.full((1, 20, 20), 255, dtype=np.uint8)
    scale = IntensityScale(mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.1), max_value=255)
    batch = slice_batch(volume(array), [0], spec(channels=3, intensity=scale))
    np.testing.assert_allclose(batch[0, :, 0, 0], [2.0, 3.0, 7.0], rtol=1e-5)


def test_spacing_gives_the_size_that_keeps_the_extent():
    # 40 rows of 0.4 mm and 50 columns of 0.5 mm are 16 mm by 25 mm: 20 by 31 pixels of 0.8 mm.
    assert spacing_size((40, 50), (0.4, 0.5), (0.8, 0.8)) == (20, 31)
    assert spacing_size((3, 40, 50), (2.0, 0.4, 0.5), (1.0, 4.0, 0.25)) == (6, 4, 100)
    assert spacing_size((2, 1), (1.0, 1.0), (10.0, 10.0)) == (1, 1)


def test_volume_input_is_resampled_resized_and_windowed():
    array = np.full((4, 40, 50), 400, dtype=np.int16)
    volume_spec = spec(
        target="volume", shape=(8, 8, 8), spacing_mm=(1.0, 0.8, 0.8), channels=2, intensity=IntensityWindow(-1000, 400)
    )
    x = volume_input(volume(array), volume_spec)
    assert x.shape == (1, 2, 8, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x, 1.0, atol=1e-6)


@pytest.mark.parametrize("spacing_mm", [None, (0.8, 0.8)])
def test_a_spot_in_the_input_maps_back_to_its_pixel(spacing_mm: tuple[float, float] | None):
    array = np.zeros((3, 40, 50), dtype=np.float32)
    array[2, 9:12, 29:32] = 1.0  # a spot centred on row 10, column 30 of slice 2
    model_spec = spec(spacing_mm=spacing_mm)
    x = slice_batch(volume(array), [2], model_spec)[0, 0]
    back = input_to_slice(x, volume(array), 2, model_spec)
    assert back.shape == (40, 50) and back.dtype == np.float32
    row, column = np.unravel_index(np.argmax(back), back.shape)
    assert abs(row - 10) <= 1 and abs(column - 30) <= 1


def test_bad_indices_and_map_shapes_are_refused():
    vol = volume(np.zeros((3, 20, 20), dtype=np.float32))
    with pytest.raises(ValueError, match=r"slice indices \[3, -1\] are outside the volume's 3 slices"):
        slice_batch(vol, [0, 3, -1], spec())
    with pytest.raises(ValueError, match=r"the map has shape \[8, 8\], not the model's input shape \[16, 16\]"):
        input_to_slice(np.zeros((8, 8)), vol, 0, spec())
