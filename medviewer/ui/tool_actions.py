"""Mutually exclusive tool buttons on a toolbar, as both viewers have them."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QToolBar

ToolT = TypeVar("ToolT", bound=enum.Enum)


def add_tool_actions(
    bar: QToolBar, owner: QObject, tools: type[ToolT], default: ToolT, choose: Callable[[ToolT], None]
) -> dict[ToolT, QAction]:
    """One checkable action per tool (its value is the label), exactly one checked, each calling ``choose``."""
    actions: dict[ToolT, QAction] = {}
    group = QActionGroup(owner)
    for tool in tools:
        action = QAction(tool.value, owner, checkable=True)
        action.setChecked(tool is default)
        action.triggered.connect(lambda _checked=False, t=tool: choose(t))
        group.addAction(action)
        bar.addAction(action)
        actions[tool] = action
    return actions
