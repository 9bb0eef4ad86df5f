"""The real slides the reader tests share (files of tests/data), and regions that probe a slide's edges."""

from __future__ import annotations

CMU = "wsi/CMU-1-Small-Region.svs"
TCGA = "wsi/tcga-cr-7395-01a-01-ts1.svs"
TINY = "wsi/openslide-python_small.svs"
DICOM_WSI = "wsi/pathml_small_dicom.dcm"


def regions_inside_and_across_edges(
    width: int, height: int, level_downsample: float
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(location in level-0 pixels, size at the level): inside, on each edge and corner, and wholly outside."""
    w, h = 300, 200
    far_x, far_y = int(width - w * level_downsample / 2), int(height - h * level_downsample / 2)
    return [
        ((0, 0), (w, h)),
        ((517, 403), (w, h)),
        ((-150, 100), (w, h)),
        ((100, -90), (w, h)),
        ((far_x, 200), (w, h)),
        ((300, far_y), (w, h)),
        ((far_x, far_y), (w, h)),
        ((-400, -400), (w, h)),
        ((width + 10, height + 10), (w, h)),
        ((1001, 777), (1, 1)),
    ]
