"""The player under a cine loop (ultrasound, angiography, cardiac MR): frame slider, play/pause, frame rate.

A cine is judged in motion at the rate it was acquired, so playback runs at the file's frame time and
loops, as on the modality. When the file gives no rate the player says so and plays at a modest rate
rather than presenting a guess as the acquisition's.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QStyle, QToolButton, QWidget

UNKNOWN_RATE_FPS = 10.0


def rate_text(frame_time_ms: float | None) -> str:
    """'30 fps', '12.5 fps', or that the file gives no rate and what is used instead."""
    if frame_time_ms is None or frame_time_ms <= 0:
        return f"frame rate unknown, {UNKNOWN_RATE_FPS:g} fps"
    return f"{1000.0 / frame_time_ms:.3g} fps"


def playback_interval_ms(frame_time_ms: float | None) -> int:
    """Timer interval: the file's frame time, or that of the stand-in rate when it has none."""
    if frame_time_ms is None or frame_time_ms <= 0:
        return round(1000.0 / UNKNOWN_RATE_FPS)
    return max(1, round(frame_time_ms))


class CinePlayer(QWidget):
    #: The frame to show, chosen with the slider or reached by playback.
    frame_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._advance)
        self.play_button = QToolButton()
        self.play_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.play_button.setToolTip("Play or pause the loop (Space)")
        self.play_button.clicked.connect(self.toggle)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setToolTip("Frame")
        self.slider.valueChanged.connect(self._slider_moved)
        self.frame_label = QLabel("")
        self.frame_label.setObjectName("cineFrame")
        self.rate_label = QLabel("")
        self.rate_label.setObjectName("cineRate")
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 0)
        row.addWidget(self.play_button)
        row.addWidget(self.slider, 1)
        row.addWidget(self.frame_label)
        row.addWidget(self.rate_label)
        self.set_frames(1, None)

    def set_frames(self, count: int, frame_time_ms: float | None) -> None:
        """A new loop of ``count`` frames, stopped at the first."""
        self.pause()
        self.timer.setInterval(playback_interval_ms(frame_time_ms))
        self.rate_label.setText(rate_text(frame_time_ms))
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(count, 1) - 1)
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self._show_number(0)

    @property
    def count(self) -> int:
        return self.slider.maximum() + 1

    @property
    def frame(self) -> int:
        return self.slider.value()

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def set_frame(self, index: int) -> None:
        """Follow a frame reached another way (wheel, keys) without asking for it again."""
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self._show_number(self.slider.value())

    def play(self) -> None:
        if self.count > 1:
            self.timer.start()
        self._show_state()

    def pause(self) -> None:
        self.timer.stop()
        self._show_state()

    def toggle(self) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def _advance(self) -> None:
        self.slider.setValue((self.frame + 1) % self.count)  # loops, as the modality plays it

    def _slider_moved(self, index: int) -> None:
        self._show_number(index)
        self.frame_changed.emit(index)

    def _show_number(self, index: int) -> None:
        self.frame_label.setText(f"Frame {index + 1}/{self.count}")

    def _show_state(self) -> None:
        icon = QStyle.StandardPixmap.SP_MediaPause if self.playing else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.play_button.setText("Pause" if self.playing else "Play")

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 (Qt naming)
        """Nobody watches a hidden loop (another tab, another kind of image): stop spending the CPU on it."""
        super().hideEvent(event)
        self.pause()
