"""The volume viewer: three linked MPR views (or one), window/level, probe, measurements and overlays.

State that the views share lives here, once: the crosshair as a (z, y, x) index into the volume, the
window, the colour map, the overlays and the measurements. Each view only draws what it is told, so
the three views cannot drift apart. A click or drag with the crosshair tool moves the crosshair, which
moves the other two views to the clicked point.

Only a volume (``Presentation.VOLUME``) is reformatted. A radiograph, a secondary capture or an
ultrasound frame (IMAGE) and a cine loop (CINE) are shown as they were acquired, in one view with the
frame index as z, with orientation letters only from what the file says and a millimetre scale only
for a real pixel size: a viewer that invents anatomy or lengths misleads the reader.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QImage, QKeyEvent, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from medviewer.catalog.pseudonyms import pseudonym
from medviewer.core import mpr
from medviewer.core.colormaps import COLORMAP_NAMES, lookup_table
from medviewer.core.display import apply_voi_lut, apply_window, heat_rgba, heat_scale, label_rgba, label_table
from medviewer.core.label_map import LabelMap
from medviewer.core.measurements import Measurement, MeasurementKind, summary_lines
from medviewer.core.volume import Presentation, Volume, percentile_window
from medviewer.core.window_presets import PERCENTILE_SAMPLE, WindowPreset, load_presets, presets_for
from medviewer.ui.cine_player import CinePlayer
from medviewer.ui.colour_legend import ColourLegend
from medviewer.ui.measurement_panel import MeasurementPanel
from medviewer.ui.segment_panel import SegmentPanel
from medviewer.ui.slice_view import MeasurementGraphic, SliceView
from medviewer.ui.tool_actions import add_tool_actions

PLANES = (mpr.Plane.AXIAL, mpr.Plane.CORONAL, mpr.Plane.SAGITTAL)
WINDOW_DRAG_GAIN = 1 / 250  # fraction of the current width per screen pixel of right-drag
MIN_WIDTH = 1e-3
#: The per-channel window of a colour image that leaves its colours as stored (as Horos and Weasis open them).
COLOUR_WINDOW = (256.0, 128.0)
#: VOI LUT Functions drawn with their own formula (``core.display.apply_window``), not pyqtgraph's linear levels.
FORMULA_FUNCTIONS = ("SIGMOID", "LINEAR_EXACT")
#: The file's overlay planes are drawn in opaque yellow: unmistakably not image pixels.
OVERLAY_COLOUR = (255, 230, 0, 255)


class Tool(enum.Enum):
    CROSSHAIR = "Crosshair"
    DISTANCE = "Distance"
    ANGLE = "Angle"
    ELLIPSE = "Ellipse ROI"
    RECTANGLE = "Rectangle ROI"

    @property
    def measurement_kind(self) -> MeasurementKind | None:
        return {
            Tool.DISTANCE: MeasurementKind.DISTANCE,
            Tool.ANGLE: MeasurementKind.ANGLE,
            Tool.ELLIPSE: MeasurementKind.ELLIPSE,
            Tool.RECTANGLE: MeasurementKind.RECTANGLE,
        }.get(self)


class Layout(enum.Enum):
    THREE = "Axial · coronal · sagittal"
    AXIAL = "Axial"
    CORONAL = "Coronal"
    SAGITTAL = "Sagittal"


@dataclass
class Heatmap:
    """A float map in the viewed volume's geometry, drawn through a colour map above ``threshold``."""

    values: np.ndarray
    name: str
    colormap: str
    opacity: float
    threshold: float
    maximum: float


class VolumeView(QWidget):
    crosshair_moved = Signal()
    #: A measurement was added or deleted by the user (not when a volume replaces the list).
    measurements_changed = Signal()

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.volume: Volume | None = None
        self.crosshair = np.zeros(3)
        self.levels = (0.0, 1.0)
        self.colormap = "grey"
        self.tool = Tool.CROSSHAIR
        self.anonymised = bool(settings.value("view/anonymised", False, type=bool)) if settings else False
        self._identity_hidden = False  # while exporting without patient details: not even a pseudonym
        self.label_map: LabelMap | None = None
        self.hidden_labels: set[int] = set()
        self.segment_panel = SegmentPanel()
        self.segment_panel.set_source_hidden(self.anonymised)
        self.segment_panel.visibility_changed.connect(self.set_label_visible)
        self.label_opacity = 0.5
        self.heatmap: Heatmap | None = None
        self.graphics: list[MeasurementGraphic] = []
        self._drawing: list[tuple[float, float]] = []
        self._drawing_view: SliceView | None = None
        self.active_plane = mpr.Plane.AXIAL
        #: The layout chosen for volumes; 2-D images and cine loops are always shown in one view.
        self.volume_layout = Layout.THREE
        self.shown_layout = Layout.THREE

        self.views = {plane: SliceView(plane) for plane in PLANES}
        for view in self.views.values():
            self._connect(view)
        self.grid = QWidget()
        self.grid.setObjectName("mprGrid")
        self.grid_layout = QGridLayout(self.grid)
        self.grid_layout.setContentsMargins(0, 0, 0, 0)
        self.grid_layout.setSpacing(2)
        self.legend = ColourLegend(self.grid)
        self.legend.hide()
        self.probe = QLabel("")
        self.probe.setObjectName("probe")
        self.hint = QLabel("Open a DICOM series or NIfTI file (File ▸ Open, or drop it here).")
        self.measurement_panel = MeasurementPanel()
        self.measurement_panel.delete_requested.connect(self.delete_measurement)
        self.cine = CinePlayer()
        self.cine.frame_changed.connect(self.show_frame)
        self.cine.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self._build_toolbar())
        layout.addWidget(self.hint)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.cine)
        layout.addWidget(self.probe)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.set_layout(Layout.THREE)

    # toolbar -------------------------------------------------------------------------------------

    def _build_toolbar(self) -> QToolBar:
        bar = QToolBar()
        self.layout_box = QComboBox()
        self.layout_box.addItems([layout.value for layout in Layout])
        self.layout_box.currentIndexChanged.connect(lambda i: self.set_layout(list(Layout)[i]))
        self.layout_action = bar.addWidget(self.layout_box)
        bar.addSeparator()
        self.tool_actions = add_tool_actions(bar, self, Tool, Tool.CROSSHAIR, self.set_tool)
        bar.addSeparator()
        self.preset_box = QComboBox()
        self.preset_box.setToolTip("Window presets (number keys 1-9; 0 for the default)")
        self.preset_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.preset_box.setEnabled(False)
        self.preset_box.activated.connect(self.apply_preset)
        bar.addWidget(self.preset_box)
        self.colormap_box = QComboBox()
        self.colormap_box.addItems(COLORMAP_NAMES)
        self.colormap_box.currentTextChanged.connect(self.set_colormap)
        bar.addWidget(self.colormap_box)
        reset = QAction("Reset view", self)
        reset.setToolTip("Reset zoom, pan, window and crosshair (R)")
        reset.triggered.connect(self.reset_view)
        bar.addAction(reset)
        self.overlays_action = QAction("Overlays", self, checkable=True)
        self.overlays_action.setChecked(True)
        self.overlays_action.setToolTip("The overlay planes stored in the file (graphics and text from the modality)")
        self.overlays_action.toggled.connect(lambda _checked: self._draw_all() if self.volume is not None else None)
        self.overlays_action.setVisible(False)
        bar.addAction(self.overlays_action)
        bar.addSeparator()
        opacity_box = QWidget()
        row = QHBoxLayout(opacity_box)
        row.setContentsMargins(4, 0, 4, 0)
        row.addWidget(QLabel("Overlay"))
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(self.label_opacity * 100))
        self.opacity_slider.setFixedWidth(90)
        self.opacity_slider.setEnabled(False)
        self.opacity_slider.valueChanged.connect(lambda v: self.set_overlay_opacity(v / 100))
        row.addWidget(self.opacity_slider)
        bar.addWidget(opacity_box)
        return bar

    def _connect(self, view: SliceView) -> None:
        view.step_requested.connect(lambda delta, v=view: self.step(delta, v.plane))
        view.window_dragged.connect(self._window_drag)
        view.pressed.connect(lambda u, v, sv=view: self._press(sv, u, v))
        view.dragged.connect(lambda u, v, sv=view: self._drag(sv, u, v))
        view.released.connect(lambda u, v, sv=view: self._release(sv, u, v))
        view.hovered.connect(lambda u, v, sv=view: self._hover(sv, u, v))
        view.left.connect(lambda: self.probe.setText(""))

    # volume, slices and crosshair -------------------------------------------------------------------

    def set_volume(self, volume: Volume) -> None:
        self._cancel_drawing()
        self.clear_measurements()
        self.label_map = None
        self.hidden_labels = set()
        self.segment_panel.set_label_map(None, None)
        self.heatmap = None
        self.opacity_slider.setEnabled(False)
        self.legend.hide()
        self.volume = volume
        self.hint.hide()
        self.probe.setText("")
        colour = volume.colour is not None
        self.colormap_box.blockSignals(True)
        self.colormap_box.setCurrentText("inverted grey" if volume.invert_display and not colour else "grey")
        self.colormap_box.blockSignals(False)
        self.colormap = self.colormap_box.currentText()
        self.colormap_box.setEnabled(not colour)
        self.colormap_box.setToolTip("A colour image is shown in its own colours" if colour else "Colour map")
        self.preset_box.clear()
        self.preset_box.addItem("0 · Default")
        for number, preset in enumerate(self.presets(), start=1):
            self.preset_box.addItem(f"{number} · {preset.name}")
        self.preset_box.setCurrentIndex(0)
        self.preset_box.setPlaceholderText("Custom window")  # shown once the window is dragged off a preset
        self.preset_box.setEnabled(True)
        note = scale_note(volume)
        for plane, view in self.views.items():
            view.set_geometry(volume.shape, volume.spacing, self.edge_letters(plane))
            view.set_scale(volume.spacing_known, note)
        self.overlays_action.setVisible(volume.overlay is not None)
        self.crosshair = (np.asarray(volume.shape, float) - 1) / 2
        if volume.presentation is Presentation.VOLUME:
            self.crosshair[0] = volume.shape[0] // 2
        else:
            self.crosshair[0] = 0  # a series of images or a loop starts at its first frame
        self.layout_action.setVisible(len(self.drawn_planes()) == len(PLANES))
        self._arrange()
        self.cine.set_frames(volume.shape[0], volume.frame_time_ms)
        self.cine.setVisible(volume.presentation is Presentation.CINE)
        self.set_window(*self.default_window())  # draws every view
        self.views[self.active_plane].take_focus()  # number keys work without a first click

    def presets(self) -> tuple[WindowPreset, ...]:
        """The modality's presets; only the percentile ones when the window acts on colours or on a VOI
        LUT's output, where a CT window in HU would mean nothing."""
        if self.volume is None:
            return ()
        if self.volume.colour is not None or self.volume.voi.lut is not None:
            return load_presets()["MR"]
        return presets_for(self.volume)

    def edge_letters(self, plane: mpr.Plane) -> dict[str, str]:
        """The edges' patient directions as far as the file tells them, and none that it does not."""
        volume = self._shown()
        if volume.presentation is not Presentation.VOLUME and volume.patient_orientation is not None:
            return mpr.patient_orientation_letters(*volume.patient_orientation)
        if not volume.orientation_known:
            return {}
        return mpr.edge_letters(volume.direction, plane)

    def drawn_planes(self) -> tuple[mpr.Plane, ...]:
        """The views in use: all three for a volume, the axial view alone for images and loops, and for a
        single slice only the view that shows it (its other two views would be one-pixel strips)."""
        if self.volume is None:
            return PLANES
        if self.volume.presentation is not Presentation.VOLUME:
            return (mpr.Plane.AXIAL,)
        flat = single_slice_plane(self.volume)
        return PLANES if flat is None else (flat,)

    def slice_index(self, plane: mpr.Plane) -> int:
        shape = self._shown().shape
        return int(np.clip(round(self.crosshair[plane.axis]), 0, mpr.slice_count(shape, plane) - 1))

    def _shown(self) -> Volume:
        """The volume shown: what draws slices, measures or probes runs only once one is set."""
        assert self.volume is not None, "no volume is shown"
        return self.volume

    @property
    def index(self) -> int:
        """The axial slice shown."""
        return self.slice_index(mpr.Plane.AXIAL)

    def step(self, delta: int, plane: mpr.Plane | None = None) -> None:
        if self.volume is None:
            return
        plane = plane if plane in self.drawn_planes() else self.active_plane
        self.active_plane = plane
        point = self.crosshair.copy()
        point[plane.axis] = self.slice_index(plane) + delta
        self.set_crosshair(point)

    def set_crosshair(self, zyx: np.ndarray) -> None:
        """Move the crosshair to a (z, y, x) index; every view whose slice changes is redrawn."""
        if self.volume is None:
            return
        before = {plane: self.slice_index(plane) for plane in PLANES}
        self.crosshair = np.clip(np.asarray(zyx, float), 0, np.asarray(self.volume.shape) - 1)
        for plane in self.drawn_planes():
            if self.slice_index(plane) != before[plane]:
                self._draw_slice(plane)
            self._draw_crosshair(plane)
        self.cine.set_frame(self.index)
        self.crosshair_moved.emit()

    def show_frame(self, index: int) -> None:
        """Show frame (axial slice) ``index``, keeping the point within it: what the cine player asks for."""
        if self.volume is not None:
            point = self.crosshair.copy()
            point[0] = index
            self.set_crosshair(point)

    def _draw_all(self) -> None:
        for plane in self.drawn_planes():
            self._draw_slice(plane)
            self._draw_crosshair(plane)

    def _draw_slice(self, plane: mpr.Plane) -> None:
        view = self.views[plane]
        k = self.slice_index(plane)
        view.slice_index = k
        view.show_pixels(*self.rendered_slice(plane, k))
        self._draw_overlays(plane)
        for graphic in self.graphics:
            if graphic.view is view:
                graphic.set_visible(graphic.measurement.slice_index == k)
        self._update_corner_text(plane)

    def rendered_slice(self, plane: mpr.Plane, k: int) -> tuple[np.ndarray, tuple[float, float], np.ndarray | None]:
        """(pixels, levels, colour map) that draw slice ``k`` of ``plane`` as the DICOM pipeline means it.

        Colour: the window on each channel, to bytes shown as they are. Grey: through the VOI LUT if there
        is one (the window then acts on its output); a SIGMOID or LINEAR_EXACT window by its own formula to
        bytes, a LINEAR one as pyqtgraph levels (fast, and the same line). The colour map comes last, so
        MONOCHROME1's inverted grey applies whichever way the window was computed.
        """
        volume = self._shown()
        width, centre = self.window()
        if volume.colour is not None:
            return apply_window(mpr.extract(volume.colour, plane, k), width, centre), (0.0, 255.0), None
        values = apply_voi_lut(mpr.extract(volume.array, plane, k), volume.voi)
        lut = lookup_table(self.colormap)
        if volume.voi.function in FORMULA_FUNCTIONS:
            return apply_window(values, width, centre, function=volume.voi.function), (0.0, 255.0), lut
        return values, self.levels, lut

    def _draw_overlays(self, plane: mpr.Plane) -> None:
        view, k = self.views[plane], self.slice_index(plane)
        overlay = self._shown().overlay
        planes = None
        if overlay is not None and self.overlays_action.isChecked():
            mask = mpr.extract(overlay, plane, k)
            planes = np.zeros(mask.shape + (4,), dtype=np.uint8)
            planes[mask] = OVERLAY_COLOUR
        view.show_overlay(view.overlay_planes, planes)
        labels = None
        if self.label_map is not None:
            shown_colours = {v: c for v, c in self.label_map.colours.items() if v not in self.hidden_labels}
            labels = label_rgba(mpr.extract(self.label_map.array, plane, k), label_table(shown_colours))
        view.show_overlay(view.labels, labels)
        view.labels.setOpacity(self.label_opacity)
        heat = self.heatmap
        rgba = None
        if heat is not None:
            values = mpr.extract(heat.values, plane, k)
            rgba = heat_rgba(values, lookup_table(heat.colormap), heat.threshold, heat.maximum)
            view.heat.setOpacity(heat.opacity)
        view.show_overlay(view.heat, rgba)

    def _draw_crosshair(self, plane: mpr.Plane) -> None:
        volume = self._shown()
        _, u, v = mpr.index_to_display(volume.shape, volume.spacing, plane, self.crosshair)
        self.views[plane].set_crosshair(u, v, visible=self.shown_layout is Layout.THREE)

    def frame_name(self, plane: mpr.Plane) -> str:
        """What one step of ``plane``'s view is called: a slice of a volume, an image, or a cine frame."""
        return {Presentation.IMAGE: "Image", Presentation.CINE: "Frame"}.get(
            self._shown().presentation, plane.value.capitalize()
        )

    def _update_corner_text(self, plane: mpr.Plane) -> None:
        volume = self._shown()
        k = self.slice_index(plane)
        place = f"{self.frame_name(plane)} {k + 1}/{mpr.slice_count(volume.shape, plane)}"
        if volume.presentation is Presentation.VOLUME and volume.orientation_known:
            centre = mpr.to_index(volume.shape, plane, k, 0, 0)
            place += f"\n{volume.index_to_world(centre) @ _plane_normal(volume, plane):.1f} mm"
        width, level = self.window()
        patient = volume.patient
        if self._identity_hidden or not (patient.name or patient.patient_id):
            identity = ""
        elif self.anonymised:
            alias = pseudonym(patient.patient_id, patient.name)
            identity = f"{alias.name}\nID {alias.patient_id}"
        else:
            lines = (patient.name, patient.patient_id and f"ID {patient.patient_id}", patient.study_date)
            identity = "\n".join(line for line in lines if line)
        self.views[plane].set_corner_text(
            {
                "top_left": identity,
                "top_right": "\n".join(line for line in (volume.modality, volume.description) if line),
                "bottom_left": place,
                "bottom_right": f"W {width:.0f} L {level:.0f}",
            }
        )

    def set_anonymised(self, anonymised: bool) -> None:
        """Pseudonyms instead of patient name and ID, and no dates, in the corner text (and in exports)."""
        self.anonymised = anonymised
        if self.settings is not None:
            self.settings.setValue("view/anonymised", anonymised)
        self.segment_panel.set_source_hidden(anonymised)
        self._redraw_corner_text()

    def _redraw_corner_text(self) -> None:
        if self.volume is not None:
            for plane in self.drawn_planes():
                self._update_corner_text(plane)

    # layout, reset, window and colours ------------------------------------------------------------------

    def set_layout(self, layout: Layout) -> None:
        """The views for volumes; images and cine loops stay in one view and keep the choice for the next volume."""
        self.volume_layout = layout
        self.layout_box.blockSignals(True)
        self.layout_box.setCurrentText(layout.value)
        self.layout_box.blockSignals(False)
        self._arrange()

    def _arrange(self) -> None:
        volume = self.volume
        layout = self.volume_layout
        if volume is not None and len(self.drawn_planes()) == 1:
            layout = Layout[self.drawn_planes()[0].name]
        self.shown_layout = layout
        grid = self.grid_layout
        for view in self.views.values():
            grid.removeWidget(view)
            view.hide()
        if layout is Layout.THREE:
            grid.addWidget(self.views[mpr.Plane.AXIAL], 0, 0, 2, 1)
            grid.addWidget(self.views[mpr.Plane.CORONAL], 0, 1)
            grid.addWidget(self.views[mpr.Plane.SAGITTAL], 1, 1)
            stretches = (3, 2)
        else:
            self.active_plane = mpr.Plane(layout.name.lower())
            grid.addWidget(self.views[self.active_plane], 0, 0, 2, 2)
            stretches = (1, 0)
        for column, stretch in enumerate(stretches):
            grid.setColumnStretch(column, stretch)
        for view in self.views.values():
            view.setVisible(grid.indexOf(view) >= 0)
        if volume is not None:
            for plane in self.drawn_planes():
                self._draw_crosshair(plane)

    def reset_view(self) -> None:
        if self.volume is None:
            return
        for view in self.views.values():
            view.reset_view()
        self.set_window(*self.default_window())
        self.preset_box.setCurrentIndex(0)

    def default_window(self) -> tuple[float, float]:
        """A colour image's own colours, else the volume's display window (the file's, its VOI LUT's, ...)."""
        volume = self._shown()
        return COLOUR_WINDOW if volume.colour is not None else volume.display_window()

    # The display window, not QWidget.window() (the top-level widget), which it hides: its callers and
    # tests know it by this name.
    def window(self) -> tuple[float, float]:  # type: ignore[override]
        """(width, centre) now shown."""
        low, high = self.levels
        return high - low, (high + low) / 2

    def set_window(self, width: float, centre: float) -> None:
        width = max(float(width), MIN_WIDTH)
        self.levels = (centre - width / 2, centre + width / 2)
        if self.volume is not None:
            self._draw_all()

    def apply_preset(self, number: int) -> None:
        """0: the volume's default window; 1-9: that preset of the volume's modality, if it exists."""
        if self.volume is None:
            return
        presets = self.presets()
        if number == 0:
            self.set_window(*self.default_window())
        elif number <= len(presets):
            self.set_window(*self.preset_window(presets[number - 1]))
        else:
            return
        self.preset_box.setCurrentIndex(number)

    def preset_window(self, preset: WindowPreset) -> tuple[float, float]:
        """``preset`` on the values the window acts on: a VOI LUT's output when there is one."""
        volume = self._shown()
        if preset.percentiles is None or volume.voi.lut is None:
            return preset.window_for(volume)
        step = max(1, int(np.ceil(volume.array.size / PERCENTILE_SAMPLE)))
        return percentile_window(apply_voi_lut(volume.array.reshape(-1)[::step], volume.voi), preset.percentiles)

    def set_colormap(self, name: str) -> None:
        self.colormap = name
        if self.colormap_box.currentText() != name:
            self.colormap_box.setCurrentText(name)
        if self.volume is not None:
            self._draw_all()

    def _window_drag(self, dx: float, dy: float) -> None:
        width, centre = self.window()
        gain = max(width, 1.0) * WINDOW_DRAG_GAIN
        self.set_window(width + dx * gain, centre - dy * gain)
        self.preset_box.setCurrentIndex(-1)  # no longer any preset: the box says "Custom window"

    # overlays ---------------------------------------------------------------------------------------

    def set_label_map(self, label_map: LabelMap | None) -> None:
        """Show a label map already in this volume's geometry (see ``medviewer.io.label_maps``)."""
        if label_map is not None and (self.volume is None or label_map.array.shape != self.volume.shape):
            shown = self.volume.shape if self.volume is not None else "no volume"
            raise ValueError(f"label map of shape {label_map.array.shape} cannot lie on {shown}")
        self.label_map = label_map
        self.hidden_labels = set()
        self.opacity_slider.setEnabled(label_map is not None)
        self.segment_panel.set_label_map(label_map, self.volume)
        if self.volume is not None:
            self._draw_all()

    def set_label_visible(self, label: int, visible: bool) -> None:
        """Hide or show one segment of the label map (the segment list's boxes)."""
        (self.hidden_labels.discard if visible else self.hidden_labels.add)(label)
        if self.volume is not None and self.label_map is not None:
            for plane in PLANES:
                self._draw_overlays(plane)

    def set_overlay_opacity(self, opacity: float) -> None:
        self.label_opacity = float(np.clip(opacity, 0.0, 1.0))
        for view in self.views.values():
            view.labels.setOpacity(self.label_opacity)

    def set_heatmap(
        self,
        heatmap: Volume | None,
        name: str = "saliency",
        colormap: str = "jet",
        opacity: float = 0.5,
        threshold: float | None = None,
    ) -> None:
        """Overlay a float map (e.g. a model's saliency) on this volume's own voxels: resampling it there takes
        most of a second on a CT, so it is done before (``medviewer.actions.model_runs.explain_volume`` does it
        in its job), never on the window's thread.

        Values below ``threshold`` (default: the map's minimum) are transparent; the legend shows the
        colour scale from the threshold to the map's maximum.
        """
        if heatmap is None or self.volume is None:
            self.heatmap = None
            self.legend.hide()
        else:
            lookup_table(colormap)  # unknown names fail here, before anything is drawn
            if heatmap.shape != self.volume.shape:
                raise ValueError(f"a heatmap of {heatmap.shape} voxels over a volume of {self.volume.shape}")
            self._show_heat(np.asarray(heatmap.array, np.float32), name, colormap, opacity, threshold)
        if self.volume is not None:
            self._draw_all()

    def restyle_heatmap(self, colormap: str, opacity: float, threshold: float | None) -> None:
        """The shown heatmap in other colours, opacity or threshold, without resampling it again (which takes
        a good part of a second on a CT: too long for a slider)."""
        if self.heatmap is None or self.volume is None:
            return
        lookup_table(colormap)
        self._show_heat(self.heatmap.values, self.heatmap.name, colormap, opacity, threshold)
        self._draw_all()

    def _show_heat(self, values: np.ndarray, name: str, colormap: str, opacity: float, threshold: float | None) -> None:
        low, high = heat_scale(values, threshold)
        self.heatmap = Heatmap(values, name, colormap, float(np.clip(opacity, 0, 1)), low, high)
        self.legend.set_scale(name, lookup_table(colormap), low, high)
        self.legend.show()
        self.legend.raise_()

    # measurements -------------------------------------------------------------------------------------

    def set_tool(self, tool: Tool) -> None:
        self.tool = tool
        self.tool_actions[tool].setChecked(True)
        self._cancel_drawing()

    def _cancel_drawing(self) -> None:
        if self._drawing_view is not None:
            self._drawing_view.set_preview([], None)
        self._drawing, self._drawing_view = [], None

    def _press(self, view: SliceView, u: float, v: float) -> None:
        self.active_plane = view.plane
        if self.volume is None:
            return
        kind = self.tool.measurement_kind
        if kind is None:
            self._move_crosshair_to(view, u, v)
        elif kind is MeasurementKind.ANGLE:
            if self._drawing_view is not view:
                self._cancel_drawing()
                self._drawing_view = view
            if not self._drawing:
                self._drawing = [(u, v)]
        else:
            self._cancel_drawing()
            self._drawing, self._drawing_view = [(u, v), (u, v)], view

    def _drag(self, view: SliceView, u: float, v: float) -> None:
        if self.volume is None:
            return
        if self.tool is Tool.CROSSHAIR:
            self._move_crosshair_to(view, u, v)
        elif self._drawing_view is view and self._drawing:
            if self.tool is Tool.ANGLE:
                view.set_preview(self._drawing + [(u, v)], MeasurementKind.ANGLE)
            else:
                self._drawing[-1] = (u, v)
                view.set_preview(self._drawing, self.tool.measurement_kind)

    def _release(self, view: SliceView, u: float, v: float) -> None:
        kind = self.tool.measurement_kind
        if self.volume is None or kind is None or self._drawing_view is not view:
            return
        if kind is MeasurementKind.ANGLE:
            if self._drawing[-1] != (u, v):
                self._drawing.append((u, v))
            if len(self._drawing) < 3:
                view.set_preview(self._drawing, kind)
                return
        else:
            self._drawing[-1] = (u, v)
            if self._drawing[0] == self._drawing[1]:
                self._cancel_drawing()
                return
        points = self._drawing[:3]
        self._cancel_drawing()
        self.add_measurement(Measurement(kind, view.plane, view.slice_index, points))

    def add_measurement(self, measurement: Measurement) -> str:
        """Draw a measurement on its view and list it; returns its summary text."""
        volume = self._shown()
        lines = summary_lines(volume, measurement)
        if not volume.spacing_known:  # the spacing is 1 and means pixels: say so, never "mm"
            lines = [line.replace(" mm²", " px²").replace(" mm", " px") for line in lines]
        text = ", ".join(lines)
        graphic = MeasurementGraphic(self.views[measurement.plane], measurement, "\n".join(lines))
        graphic.set_visible(measurement.slice_index == self.slice_index(measurement.plane))
        self.graphics.append(graphic)
        where = f"{self.frame_name(measurement.plane).lower()} {measurement.slice_index + 1}"
        self.measurement_panel.add(measurement, text, where)
        self.measurements_changed.emit()
        return text

    @property
    def measurements(self) -> list[Measurement]:
        return [graphic.measurement for graphic in self.graphics]

    def delete_measurement(self, row: int) -> None:
        self._remove_measurement(row)
        self.measurements_changed.emit()

    def _remove_measurement(self, row: int) -> None:
        graphic = self.graphics.pop(row)
        graphic.remove()
        self.measurement_panel.remove(row)

    def clear_measurements(self) -> None:
        """Empty the list without reporting a change: a new volume replaces it, nothing was deleted."""
        while self.graphics:
            self._remove_measurement(len(self.graphics) - 1)

    # probe and crosshair by mouse ----------------------------------------------------------------------------

    def _index_under(self, view: SliceView, u: float, v: float) -> np.ndarray:
        volume = self._shown()
        return mpr.display_to_index(volume.shape, volume.spacing, view.plane, view.slice_index, u, v)

    def _move_crosshair_to(self, view: SliceView, u: float, v: float) -> None:
        self.set_crosshair(self._index_under(view, u, v))

    def _hover(self, view: SliceView, u: float, v: float) -> None:
        if self.volume is None:
            return
        self.probe.setText(self.probe_text(self._index_under(view, u, v)))

    def probe_text(self, zyx: np.ndarray) -> str:
        """Value (R, G, B for colour images) and position at a (z, y, x) index, or '' outside the volume.

        The position is in the patient (LPS mm) only for a volume whose orientation is known; an image or
        a loop gives its frame and pixel, which is all the file says."""
        volume = self._shown()
        voxel = np.round(zyx).astype(int)
        if np.any(voxel < 0) or np.any(voxel >= np.asarray(volume.shape)):
            return ""
        if volume.colour is not None:
            red, green, blue = (int(c) for c in volume.colour[tuple(voxel)])
            shown = f"R {red} G {green} B {blue}"
        else:
            value = volume.array[tuple(voxel)]
            unit = " HU" if volume.modality == "CT" else ""
            shown = (f"{value:.0f}" if np.issubdtype(volume.array.dtype, np.integer) else f"{value:.4g}") + unit
        if volume.presentation is not Presentation.VOLUME:
            where = f"{self.frame_name(mpr.Plane.AXIAL).lower()} {voxel[0] + 1}  ·  pixel ({voxel[2]}, {voxel[1]})"
        else:
            where = f"voxel ({voxel[2]}, {voxel[1]}, {voxel[0]})"
            if volume.orientation_known:
                x, y, z = volume.index_to_world(voxel)
                where = f"({x:.1f}, {y:.1f}, {z:.1f}) mm LPS  ·  {where}"
        text = f"{where}  ·  {shown}"
        if self.label_map is not None and self.label_map.array[tuple(voxel)]:
            label = int(self.label_map.array[tuple(voxel)])
            text += f"  ·  {self.label_map.names.get(label, f'label {label}')}"
        if self.heatmap is not None and np.isfinite(self.heatmap.values[tuple(voxel)]):
            text += f"  ·  {self.heatmap.name} {self.heatmap.values[tuple(voxel)]:.3g}"
        return text

    # keys and export -------------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        key = event.key()
        steps: dict[int, int] = {
            Qt.Key.Key_PageUp: -1,
            Qt.Key.Key_PageDown: 1,
            Qt.Key.Key_Up: -1,
            Qt.Key.Key_Down: 1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_Right: 1,
        }
        if key in steps:
            self.step(steps[key])
        elif key == Qt.Key.Key_Space and self.cine.isVisible():
            self.cine.toggle()
        elif Qt.Key.Key_0 <= key <= Qt.Key.Key_9:
            self.apply_preset(key - Qt.Key.Key_0)
        elif key == Qt.Key.Key_R:
            self.reset_view()
        elif key == Qt.Key.Key_Escape:
            self._cancel_drawing()
        else:
            super().keyPressEvent(event)

    def grab_views(self, include_identifiers: bool = True) -> QImage:
        """The views as shown, for an export; without identifiers, no name, ID, pseudonym or date is in it."""
        self._identity_hidden = not include_identifiers
        self._redraw_corner_text()
        try:
            return self.grid.grab().toImage()
        finally:
            self._identity_hidden = False
            self._redraw_corner_text()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self.legend.move(self.grid.width() - self.legend.width() - 8, 40)


def scale_note(volume: Volume) -> str:
    """What the reader must know about the image's scale: what its pixel size means, or that it has none
    (in the reader's words when ``medviewer.io`` gave them, else in ours)."""
    if volume.spacing_note or volume.spacing_known:
        return volume.spacing_note
    return "No pixel size in this file: no scale bar, lengths in pixels"


def _plane_normal(volume: Volume, plane: mpr.Plane) -> np.ndarray:
    """World direction a view's slice index runs along, for the slice position in mm."""
    return volume.direction[:, 2 - plane.axis]


def single_slice_plane(volume: Volume) -> mpr.Plane | None:
    """The one plane a volume of a single slice can be seen in (the axis it is one voxel thick along)."""
    flat = [plane for plane in PLANES if volume.shape[plane.axis] == 1]
    return flat[0] if len(flat) == 1 else None
