"""Render the README's screenshots: the demo CT in three views (lung window, two measurements), the
demo slide zoomed on a tumour region with annotations, the minimap and the scale bar, the demo models
at work on the CT and on the slide, and the patient panel on a catalog holding the demo data and
pydicom's DICOMDIR tree.

Run with ``make screenshots`` (after ``make run`` has made ``demo-data/``). Everything shown is made
through the same calls the mouse and keys make, so the pictures are what a reader gets. The slide is
copied to a temporary folder first, so its annotation sidecar is not left in ``demo-data/``, and the
catalog, settings and thumbnails live in a temporary MEDVIEWER_HOME, never the user's own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from medviewer.annotations.model import Annotation  # noqa: E402
from medviewer.core import mpr  # noqa: E402
from medviewer.core.measurements import Measurement, MeasurementKind  # noqa: E402
from medviewer.ui.app import SCREENSHOT_SIZE, SCREENSHOT_TIMEOUT_MS, application, make_settings, shut_down  # noqa: E402
from medviewer.ui.main_window import MainWindow  # noqa: E402

LUNG_PRESET = 1
REPO = Path(__file__).resolve().parent.parent


def shown_window() -> tuple[QApplication, MainWindow]:
    """The application and a window at the README's screenshot size, shown."""
    app = application()
    window = MainWindow(make_settings())
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    return app, window


def save_window(app: QApplication, window: MainWindow, out: Path) -> None:
    """Let pending paints land, then write the window as a PNG and print where."""
    app.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out), "PNG")
    print(out)


def volume_screenshot(demo: Path, out: Path, truth: dict) -> None:
    app, window = shown_window()
    window.open_paths([demo / "ct"])
    if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS):
        raise SystemExit("the demo CT did not load in time")
    view = window.volume_view
    volume = view.volume
    lesion = truth["ct"]["lesions"][0]
    centre = volume.world_to_index(lesion["center_lps_mm"])
    view.set_crosshair(np.round(centre))
    view.apply_preset(LUNG_PRESET)
    k, u, v = mpr.index_to_display(volume.shape, volume.spacing, mpr.Plane.AXIAL, np.round(centre))
    radius = lesion["radius_mm"]
    view.add_measurement(
        Measurement(
            MeasurementKind.DISTANCE,
            mpr.Plane.AXIAL,
            int(k),
            [(u - radius, v + radius * 1.6), (u + radius, v + radius * 1.6)],
        )
    )
    view.add_measurement(
        Measurement(
            MeasurementKind.ELLIPSE,
            mpr.Plane.AXIAL,
            int(k),
            [(u - radius * 0.7, v - radius * 0.7), (u + radius * 0.7, v + radius * 0.7)],
        )
    )
    view.views[mpr.Plane.AXIAL].box.scaleBy((0.5, 0.5), center=QPointF(u, v))
    window.ai_panel.schedule_probe()
    window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
    save_window(app, window, out)
    window.close()


def slide_screenshot(demo: Path, out: Path, truth: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        slide_path = Path(folder) / "slide.tiff"
        shutil.copy(demo / "slide.tiff", slide_path)
        app, window = shown_window()
        window.open_paths([slide_path])
        if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS):
            raise SystemExit("the demo slide did not load in time")
        view = window.slide_view
        document = view.document
        tumour = np.asarray(truth["slide"]["tumour_regions"][0]["polygon_level0_px"])
        document.add(Annotation.polygon(tumour, classification=document.class_named("Tumor")))
        x0, y0 = tumour.min(axis=0)
        x1, y1 = tumour.max(axis=0)
        document.add(
            Annotation.ellipse(x1 + 300, y0, x1 + 1500, y0 + 900, classification=document.class_named("Stroma"))
        )
        document.add(Annotation.rectangle(x0 - 900, y1 + 200, x0 - 100, y1 + 900))
        view.set_magnification(2.5)
        view.centre_on((x0 + x1) / 2, (y0 + y1) / 2 + 300)
        view.annotations.select({document.annotations[0].id})
        window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
        save_window(app, window, out)
        shut_down(app, window)


def ai_screenshot(demo: Path, out: Path, truth: dict) -> None:
    """The demo CT model run on every slice, and its Grad-CAM on the slice through the first lesion."""
    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-screenshots-")  # a catalog of its own
    app, window = shown_window()
    window.ai_panel.schedule_probe()
    window.open_paths([demo / "ct"])
    if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS):
        raise SystemExit("the demo CT did not load in time")
    view, panel = window.volume_view, window.ai_panel
    names = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
    panel.model_box.setCurrentIndex(next(i for i, n in enumerate(names) if n.startswith("ct-slice-lesion-demo")))
    centre = np.round(view.volume.world_to_index(truth["ct"]["lesions"][0]["center_lps_mm"]))
    view.set_crosshair(centre)
    panel.run(every_slice=True)
    window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
    panel.method_box.setCurrentIndex(panel.method_box.findData("gradcam"))
    panel.run_saliency()
    window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
    save_window(app, window, out)
    shut_down(app, window)
    shutil.rmtree(os.environ["MEDVIEWER_HOME"], ignore_errors=True)


def ai_slide_screenshot(demo: Path, out: Path, truth: dict) -> None:
    """The demo patch model over the demo slide's tissue, and the Grad-CAM of a patch at a tumour's edge."""
    from medviewer.demo.patch_truth import tumour_fraction

    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-screenshots-")  # a catalog of its own
    with tempfile.TemporaryDirectory() as folder:
        slide_path = Path(folder) / "slide.tiff"
        shutil.copy(demo / "slide.tiff", slide_path)
        app, window = shown_window()
        window.ai_panel.schedule_probe()
        window.open_paths([slide_path])
        if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS):
            raise SystemExit("the demo slide did not load in time")
        panel, view = window.ai_panel, window.slide_view
        names = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
        panel.model_box.setCurrentIndex(next(i for i, n in enumerate(names) if n.startswith("slide-patch-tumour-demo")))
        panel.run_slide()
        if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS) or panel.slide_result is None:
            raise SystemExit("the slide run did not finish in time")
        result = panel.slide_result
        grid = result.grid
        polygons = [np.asarray(region["polygon_level0_px"]) for region in truth["slide"]["tumour_regions"]]
        fraction = tumour_fraction(polygons[:1], grid.origin, grid.patch_size_level0, grid.rows, grid.columns)
        tumour = result.heatmap(result.classes.index("tumour"))
        # The tissue patch most like a tumour's edge: about half tumour, called tumour.
        edge = [
            (abs(fraction[c] - 0.5), c) for c in grid.tissue_cells() if 0.3 <= fraction[c] <= 0.7 and tumour[c] > 0.5
        ]
        row, column = min(edge)[1]
        x, y, width, height = grid.box(row, column)
        view.set_magnification(7.5)
        centre = polygons[0].mean(axis=0)  # between the tumour and the clicked patch: both in view
        view.centre_on((x + width / 2 + centre[0]) / 2, (y + height / 2 + centre[1]) / 2)
        panel.method_box.setCurrentIndex(panel.method_box.findData("gradcam"))
        panel.class_box.setCurrentIndex(result.classes.index("tumour"))
        panel.patch_clicked(x + width / 2, y + height / 2)
        window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
        save_window(app, window, out)
        shut_down(app, window)
    shutil.rmtree(os.environ["MEDVIEWER_HOME"], ignore_errors=True)


def panel_screenshot(demo: Path, out: Path) -> None:
    from pydicom.data import get_testdata_file

    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-screenshots-")  # a catalog of its own
    app, window = shown_window()
    dicomdir = Path(get_testdata_file("DICOMDIR"))
    window.import_paths([demo / "ct", demo / "ct2", demo / "slide.tiff", dicomdir])
    if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS):
        raise SystemExit("the demo import did not finish in time")
    panel = window.patient_panel
    series = next(e for e in panel.entries() if e.kind == "series" and "phantom" in e.label)
    panel.tree.itemActivated.emit(panel.item_for(series.key), 0)
    window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
    save_window(app, window, out)
    shut_down(app, window)
    shutil.rmtree(os.environ["MEDVIEWER_HOME"], ignore_errors=True)


def public_file_screenshot(path: Path, out: Path, frame: int | None = None) -> None:
    """A public DICOM file nobody here wrote, opened as a user opens it (the kinds table's pictures)."""
    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-screenshots-")
    app, window = shown_window()
    window.open_paths([path])
    if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS):
        raise SystemExit(f"{path} did not load in time")
    view = window.volume_view
    if frame is not None:
        view.cine.slider.setValue(frame)  # as dragging the slider does
    save_window(app, window, out)
    shut_down(app, window)
    shutil.rmtree(os.environ["MEDVIEWER_HOME"], ignore_errors=True)


def seg_screenshot(out: Path) -> None:
    """highdicom's SEG of pydicom's CT_small, chosen in the series chooser of a folder holding both: the CT
    opens underneath and the segment is drawn, listed in the Segments panel."""
    from pydicom.data import get_testdata_file

    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-screenshots-")
    folder = Path(tempfile.mkdtemp(prefix="medviewer-seg-")) / "study"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "ct.dcm")
    shutil.copy(REPO / "tests/data/highdicom/seg_image_ct_binary_single_frame.dcm", folder / "seg.dcm")
    app, window = shown_window()
    window.open_paths([folder])
    window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
    window.series_chooser.choose([info.kind for info in window.series_chooser.entries()].index("segmentation"))
    if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS) or window.volume_view.label_map is None:
        raise SystemExit("the SEG was not drawn over its CT in time")
    save_window(app, window, out)
    shut_down(app, window)
    shutil.rmtree(folder.parent, ignore_errors=True)
    shutil.rmtree(os.environ["MEDVIEWER_HOME"], ignore_errors=True)


def report_screenshot(out: Path) -> None:
    """pydicom's comprehensive SR, read in the Report panel."""
    from pydicom.data import get_testdata_file

    public_file_screenshot(Path(get_testdata_file("test-SR.dcm")), out)


def ood_screenshot(out: Path) -> None:
    """The demo tumour model over a real skin slide (CMU-1, OpenSlide's test data): the guard flags the
    patches it was not trained on, the banner says so above the numbers, and the flagged patches are hatched."""
    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-screenshots-")
    app, window = shown_window()
    window.ai_panel.schedule_probe()
    window.open_paths([REPO.parent / "shared" / "testdata" / "wsi" / "CMU-1-Small-Region.svs"])
    if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS):
        raise SystemExit("CMU-1-Small-Region.svs did not load in time")
    panel = window.ai_panel
    names = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
    panel.model_box.setCurrentIndex(next(i for i, n in enumerate(names) if n.startswith("slide-patch-tumour-demo")))
    panel.run_slide()
    if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS) or panel.slide_result is None:
        raise SystemExit("the slide run did not finish in time")
    save_window(app, window, out)
    shut_down(app, window)
    shutil.rmtree(os.environ["MEDVIEWER_HOME"], ignore_errors=True)


def kinds_screenshots(out_folder: Path) -> None:
    from pydicom.data import get_testdata_file

    public_file_screenshot(
        REPO / "tests/data/highdicom/dx_image.dcm", out_folder / "medviewer-radiograph.png"
    )
    public_file_screenshot(Path(get_testdata_file("color3d_jpeg_baseline.dcm")), out_folder / "medviewer-cine.png", 40)
    public_file_screenshot(Path(get_testdata_file("examples_palette.dcm")), out_folder / "medviewer-palette.png")
    seg_screenshot(out_folder / "medviewer-seg.png")
    report_screenshot(out_folder / "medviewer-report.png")


if __name__ == "__main__":
    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-screenshots-")
    demo_folder, out_folder = Path(sys.argv[1]), Path(sys.argv[2])
    out_folder.mkdir(parents=True, exist_ok=True)
    ground_truth = json.loads((demo_folder / "ground_truth.json").read_text())
    volume_screenshot(demo_folder, out_folder / "medviewer-mpr.png", ground_truth)
    slide_screenshot(demo_folder, out_folder / "medviewer-slide.png", ground_truth)
    shutil.rmtree(os.environ["MEDVIEWER_HOME"], ignore_errors=True)
    ai_screenshot(demo_folder, out_folder / "medviewer-ai.png", ground_truth)
    ai_slide_screenshot(demo_folder, out_folder / "medviewer-ai-slide.png", ground_truth)
    ood_screenshot(out_folder / "medviewer-ai-ood.png")
    panel_screenshot(demo_folder, out_folder / "medviewer-panel.png")
    kinds_screenshots(out_folder)
