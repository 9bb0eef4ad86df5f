"""The user's class list: QuPath's defaults until edited, then kept in the config folder."""

from __future__ import annotations

from pathlib import Path

from medviewer.annotations import DEFAULT_CLASSES, AnnotationClass, AnnotationDocument, load_classes, save_classes
from medviewer.annotations.class_list import classes_path


def test_defaults_are_qupaths() -> None:
    assert load_classes() == list(DEFAULT_CLASSES)
    assert [(c.name, c.colour) for c in DEFAULT_CLASSES] == [
        ("Tumor", (200, 0, 0)), ("Stroma", (150, 200, 150)), ("Immune cells", (160, 90, 160)),
        ("Necrosis", (50, 50, 50)), ("Other", (255, 200, 0)), ("Region*", (0, 0, 180)), ("Ignore*", (180, 180, 180)),
    ]


def test_edits_saved_from_change_events_persist(medviewer_home: Path) -> None:
    document = AnnotationDocument(classes=load_classes())
    document.changed.append(lambda event: event.classes_changed and save_classes(document.classes))
    document.add_class("Mitosis", (1, 2, 3))
    document.recolour_class("Tumor", (255, 0, 0))
    assert classes_path().parent == medviewer_home / "config"
    reloaded = load_classes()
    assert reloaded[0] == AnnotationClass("Tumor", (255, 0, 0))
    assert reloaded[-1] == AnnotationClass("Mitosis", (1, 2, 3))


def test_unreadable_config_gives_defaults_and_is_left_alone() -> None:
    classes_path().write_text('{"format": "something else"}')
    assert load_classes() == list(DEFAULT_CLASSES)
    assert classes_path().read_text() == '{"format": "something else"}'
