"""Which files an import looks at: folders walked with ``os.scandir``, DICOMDIRs expanded with pydicom.

A DICOMDIR names its files by relative path; an entry that points outside the DICOMDIR's folder (a
crafted or damaged index, e.g. ``../../etc``) is refused with a reason instead of being read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.fileset import FileSet

from medviewer.io.dicom_series import READ_ERRORS
from medviewer.io.formats import is_dicomdir_name


@dataclass
class Candidate:
    """A file to consider, with the size and modification time that decide whether it changed."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Found:
    files: list[Candidate] = field(default_factory=list)
    #: (path, reason) of entries refused before any header was read.
    refused: list[tuple[str, str]] = field(default_factory=list)


def find_files(paths: list[Path]) -> Found:
    """Every regular file under ``paths`` (files, folders, DICOMDIRs), each once, in a stable order."""
    found = Found()
    seen: set[str] = set()

    def add(path: str, stat: os.stat_result) -> None:
        if path not in seen:
            seen.add(path)
            found.files.append(Candidate(path, stat.st_size, stat.st_mtime_ns))

    for root in paths:
        root_text = os.path.abspath(root)
        if os.path.isdir(root_text):
            _walk(root_text, add, found)
        elif is_dicomdir_name(root_text):
            _expand_dicomdir(root_text, add, found)
        else:
            try:
                add(root_text, os.stat(root_text))
            except OSError as exc:
                found.refused.append((root_text, f"cannot be read ({exc.strerror or type(exc).__name__})"))
    return found


def _walk(folder: str, add, found: Found) -> None:  # noqa: ANN001 - a local callback
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            found.refused.append((current, f"folder cannot be read ({exc.strerror or type(exc).__name__})"))
            continue
        subfolders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
            elif entry.is_file():
                if is_dicomdir_name(entry.name):
                    _expand_dicomdir(entry.path, add, found)
                else:
                    add(entry.path, entry.stat())
        stack.extend(reversed(subfolders))


def _expand_dicomdir(path: str, add, found: Found) -> None:  # noqa: ANN001 - a local callback
    """Add the files a DICOMDIR references; the index itself is not an image and is not added."""
    try:
        ds = pydicom.dcmread(path)
        references = _referenced_files(ds, os.path.dirname(path))
    except (InvalidDicomError, *READ_ERRORS) as exc:
        found.refused.append((path, f"DICOMDIR cannot be read ({type(exc).__name__})"))
        return
    base = Path(path).resolve().parent
    for reference in references:
        referenced = os.path.normpath(reference)
        if not Path(referenced).resolve().is_relative_to(base):
            found.refused.append((referenced, "DICOMDIR entry points outside the DICOMDIR's folder"))
            continue
        try:
            add(referenced, os.stat(referenced))
        except OSError as exc:
            found.refused.append((referenced, f"listed in the DICOMDIR but {exc.strerror or 'unreadable'}"))


def _referenced_files(ds: pydicom.Dataset, folder: str) -> list[str]:
    """The paths of the DICOMDIR's records, through pydicom's ``FileSet``.

    ``FileSet`` rejects a whole DICOMDIR when one record points outside its folder; the records are then
    read directly, so that the caller can refuse that entry alone and import the others.
    """
    try:
        return [str(instance.path) for instance in FileSet(ds)]
    except PermissionError:
        records = [r for r in ds.get("DirectoryRecordSequence", []) if "ReferencedFileID" in r]
        ids = [r.ReferencedFileID for r in records]
        return [os.path.join(folder, *([i] if isinstance(i, str) else list(i))) for i in ids]
