"""DICOM Structured Reports read as a tree a clinician can read: "Finding: Mass", "Diameter: 12.5 mm".

An SR is a tree of content items, each a named value (concept name plus a TEXT, CODE, NUM, image
reference, coordinates...) related to its parent (CONTAINS, HAS PROPERTIES, INFERRED FROM...). Reports
come from many writers and are often incomplete, so nothing here trusts the tree: an item that lacks
what its value type needs, or has a value type this reader does not know, becomes a placeholder that
says what is missing, and the rest of the report is still shown. A report that is withheld because one
item is broken would hide the findings that are not.

Nothing is logged, and the document's header as rendered carries no patient name, ID or date; the
content itself may name people (observers, for instance) and is shown as written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pydicom.valuerep import PersonName

from medviewer.core.errors import UnsupportedFileError
from medviewer.io.dicom_kind import SR_SOP_CLASS_PREFIX, sop_class_name
from medviewer.io.dicom_series import read_dataset

#: Trees nested deeper than this are cut with a placeholder: no real report comes close, and a hostile
#: file must not exhaust the interpreter's recursion limit.
MAX_DEPTH = 64
#: How an item without a concept name is labelled (the name is optional for some relationships).
VALUE_TYPE_WORDS = {
    "CONTAINER": "Section",
    "TEXT": "Text",
    "CODE": "Code",
    "NUM": "Number",
    "DATETIME": "Date and time",
    "DATE": "Date",
    "TIME": "Time",
    "PNAME": "Person",
    "UIDREF": "UID",
    "COMPOSITE": "Object",
    "IMAGE": "Image",
    "WAVEFORM": "Waveform",
    "SCOORD": "Coordinates",
    "SCOORD3D": "Coordinates",
    "TCOORD": "Time coordinates",
    "TABLE": "Table",
}
#: UCUM unit codes that read poorly as written; every other unit is shown as its code value ("mm", "cm2").
UNIT_WORDS = {"1": "", "[hnsf'U]": "HU", "deg": "°", "{ratio}": "", "%": "%"}
#: Readable words for the relationships that are worth saying in a rendered line.
BY_REFERENCE_WORDS = {
    "INFERRED FROM": "inferred from",
    "SELECTED FROM": "selected from",
    "HAS PROPERTIES": "has properties of",
    "HAS CONCEPT MOD": "modified by",
    "HAS OBS CONTEXT": "observation context from",
    "HAS ACQ CONTEXT": "acquisition context from",
    "CONTAINS": "contains",
}
#: Errors pydicom raises when a damaged value is converted or an attribute is missing.
ITEM_ERRORS = (AttributeError, IndexError, KeyError, TypeError, ValueError, OverflowError)


@dataclass
class SrNode:
    """One content item: its relationship to its parent, value type, concept name and readable value."""

    relationship: str
    value_type: str
    #: The concept name's code meaning; empty when the item has none (allowed for some relationships).
    concept: str
    #: The value as a person reads it; a bracketed placeholder ("[missing TextValue]") when it is damaged.
    value: str
    children: list[SrNode] = field(default_factory=list)
    #: For NUM items: the number and the unit's code value, so callers need not parse ``value``.
    number: float | None = None
    unit: str = ""
    #: For an item that points at another item of the tree instead of holding a value: that item's
    #: position ("1.2.3", ReferencedContentItemIdentifier), the value then says how it relates.
    by_reference: str = ""

    @property
    def label(self) -> str:
        if self.concept:
            return self.concept
        return "Reference" if self.by_reference else VALUE_TYPE_WORDS.get(self.value_type, "Item")

    def walk(self) -> Iterator[SrNode]:
        """This node and every node below it, depth first, in the report's order."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class SrDocument:
    #: File name only: the full path can name a patient.
    source: str
    #: The SR's kind, e.g. "Comprehensive 3D SR Storage".
    sop_class: str
    title: str
    #: CompletionFlag and VerificationFlag as written (COMPLETE or PARTIAL; VERIFIED or UNVERIFIED), or "".
    completion: str
    verification: str
    #: The template the content follows, e.g. "1500" for a TID 1500 Measurement Report; "" when not given.
    template: str
    content: list[SrNode]

    def walk(self) -> Iterator[SrNode]:
        for node in self.content:
            yield from node.walk()

    @property
    def placeholders(self) -> list[str]:
        """What was missing or unreadable, as the placeholders that stand in for it."""
        found = [self.title] if self.title.startswith("[") else []
        for node in self.walk():
            found.extend(text for text in (node.concept, node.value) if text.startswith("["))
        return found


def is_structured_report(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")).startswith(SR_SOP_CLASS_PREFIX)


def read_sr(path: Path) -> SrDocument:
    """The structured report at ``path``; damaged content becomes placeholders, never an exception."""
    path = Path(path)
    ds = read_dataset(path, stop_before_pixels=True)
    if not is_structured_report(ds):
        raise UnsupportedFileError(path, f"a DICOM {sop_class_name(ds)}, not a structured report (SR)")
    return SrDocument(
        source=path.name,
        sop_class=sop_class_name(ds),
        title=_concept(ds) or "[no document title: ConceptNameCodeSequence is missing]",
        completion=_text(ds, "CompletionFlag"),
        verification=_text(ds, "VerificationFlag"),
        template=_template(ds),
        content=_children(ds, depth=1) or [_placeholder("[the report has no content: ContentSequence is missing]")],
    )


def render_sr(doc: SrDocument) -> list[str]:
    """Indented lines for a person to read: a header (title, kind, status) and then the content tree."""
    status = ", ".join(word.lower() for word in (doc.completion, doc.verification) if word) or "status not given"
    kind = doc.sop_class + (f", template TID {doc.template}" if doc.template else "")
    lines = [doc.title, f"({kind}; {status})"]
    for node in doc.content:
        _render(node, 1, lines)
    return lines


def _render(node: SrNode, depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    if node.value_type == "CONTAINER" and not node.value:
        lines.append(f"{indent}{node.label}")
    else:
        # a free-text value may span lines; its continuation lines stay inside the item's indentation
        first, *more = node.value.replace("\r\n", "\n").replace("\r", "\n").strip("\n").split("\n")
        lines.append(f"{indent}{node.label}: {first}")
        hanging = " " * (len(indent) + len(node.label) + 2)  # under the value's first character
        lines.extend(f"{hanging}{line}".rstrip() for line in more)
    for child in node.children:
        _render(child, depth + 1, lines)


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except ITEM_ERRORS:
        return ""


def _code_meaning(code: Dataset) -> str:
    """A code's meaning, else its value and scheme (better than nothing for a reader who knows the code)."""
    meaning = _text(code, "CodeMeaning")
    if meaning:
        return meaning
    value = _text(code, "CodeValue") or _text(code, "LongCodeValue") or _text(code, "URNCodeValue")
    scheme = _text(code, "CodingSchemeDesignator")
    return f"[code {value} ({scheme}) without a meaning]" if value else ""


def _first(ds: Dataset, keyword: str) -> Dataset | None:
    try:
        items = ds.get(keyword) or []
        return items[0] if len(items) else None
    except ITEM_ERRORS:
        return None


def _concept(ds: Dataset) -> str:
    code = _first(ds, "ConceptNameCodeSequence")
    return _code_meaning(code) if code is not None else ""


def _template(ds: Dataset) -> str:
    template = _first(ds, "ContentTemplateSequence")
    return _text(template, "TemplateIdentifier") if template is not None else ""


def _children(ds: Dataset, depth: int) -> list[SrNode]:
    try:
        items = list(ds.get("ContentSequence") or [])
    except ITEM_ERRORS as exc:
        return [_placeholder(f"[unreadable ContentSequence ({type(exc).__name__})]")]
    if depth > MAX_DEPTH and items:
        return [_placeholder(f"[{len(items)} content item(s) nested deeper than {MAX_DEPTH} levels are not shown]")]
    return [_node(item, depth) for item in items]


def _placeholder(value: str, relationship: str = "") -> SrNode:
    return SrNode(relationship=relationship, value_type="", concept="", value=value)


def _node(item: Dataset, depth: int) -> SrNode:
    relationship = _text(item, "RelationshipType")
    value_type = _text(item, "ValueType").upper()
    if not value_type:
        return _reference_or_empty(item, relationship)
    try:
        node = SrNode(relationship=relationship, value_type=value_type, concept=_concept(item), value="")
        _fill_value(node, item)
    except ITEM_ERRORS as exc:
        node = SrNode(
            relationship=relationship,
            value_type=value_type,
            concept=_concept(item),
            value=f"[unreadable {value_type} value ({type(exc).__name__})]",
        )
    node.children = _children(item, depth + 1)
    return node


def _reference_or_empty(item: Dataset, relationship: str) -> SrNode:
    """An item that points at another item of the tree (by reference), or a placeholder for an empty one."""
    try:
        identifier = item.get("ReferencedContentItemIdentifier")
    except ITEM_ERRORS:
        identifier = None
    if identifier is not None:
        position = ".".join(str(n) for n in _values(identifier))
        words = BY_REFERENCE_WORDS.get(relationship, relationship.lower() or "refers to")
        node = _placeholder(f"{words} content item {position}", relationship)
        node.by_reference = position
        return node
    if len(item) == 0:
        return _placeholder("[empty content item]", relationship)
    return _placeholder("[content item without a value type (ValueType is missing)]", relationship)


def _fill_value(node: SrNode, item: Dataset) -> None:
    """Set the node's readable value (and number and unit for NUM) from the item's value attributes."""
    kind = node.value_type
    if kind == "CONTAINER":
        node.value = "" if item.get("ContentSequence") else "[empty section]"
    elif kind == "TEXT":
        node.value = _required_text(item, "TextValue")
    elif kind == "CODE":
        code = _first(item, "ConceptCodeSequence")
        node.value = (_code_meaning(code) if code is not None else "") or "[missing ConceptCodeSequence]"
    elif kind == "NUM":
        _fill_number(node, item)
    elif kind == "DATETIME":
        node.value = _readable_datetime(_required_text(item, "DateTime"))
    elif kind == "DATE":
        node.value = _readable_date(_required_text(item, "Date"))
    elif kind == "TIME":
        node.value = _readable_time(_required_text(item, "Time"))
    elif kind == "PNAME":
        node.value = _readable_name(item)
    elif kind == "UIDREF":
        node.value = _required_text(item, "UID")
    elif kind in ("COMPOSITE", "IMAGE", "WAVEFORM"):
        node.value = _referenced_object(item)
    elif kind in ("SCOORD", "SCOORD3D"):
        node.value = _coordinates(item, 3 if kind == "SCOORD3D" else 2)
    elif kind == "TCOORD":
        node.value = _time_coordinates(item)
    else:
        node.value = f"[value type {kind} is not shown by this viewer]"


def _required_text(item: Dataset, keyword: str) -> str:
    value = item.get(keyword)
    if value is None or str(value).strip() == "":
        return f"[missing {keyword}]"
    return str(value).strip()


def _fill_number(node: SrNode, item: Dataset) -> None:
    measured = _first(item, "MeasuredValueSequence")
    if measured is None:
        qualifier = _first(item, "NumericValueQualifierCodeSequence")
        reason = _code_meaning(qualifier) if qualifier is not None else ""
        node.value = f"no value ({reason})" if reason else "[missing MeasuredValueSequence: no value given]"
        return
    text = _text(measured, "NumericValue")
    if not text:
        node.value = "[missing NumericValue]"
        return
    node.number = float(text)
    unit_code = _first(measured, "MeasurementUnitsCodeSequence")
    if unit_code is None:
        node.value = f"{text} [missing MeasurementUnitsCodeSequence]"
        return
    node.unit = _text(unit_code, "CodeValue")
    shown = UNIT_WORDS.get(node.unit, node.unit)
    node.value = f"{text}{shown}" if shown == "°" else f"{text} {shown}".strip()


def _values(value: object) -> list[object]:
    """A DICOM value as a list: pydicom gives a multi-valued element as a sequence, a single value bare."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return [v for v in value if v is not None]


def _readable_date(value: str) -> str:
    digits = value.strip()
    if len(digits) == 8 and digits.isdigit():
        return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
    return value


def _readable_time(value: str) -> str:
    digits = value.strip().replace(":", "").split(".")[0]
    if digits.isdigit() and len(digits) in (2, 4, 6):
        return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))
    return value


def _readable_datetime(value: str) -> str:
    stamp = value.strip().split("&")[0].split("+")[0].split("-")[0]
    date, clock = stamp[:8], stamp[8:]
    if len(date) == 8 and date.isdigit():
        return f"{_readable_date(date)} {_readable_time(clock)}".strip() if clock else _readable_date(date)
    return value


def _readable_name(item: Dataset) -> str:
    value = item.get("PersonName")
    if value is None or str(value).strip() == "":
        return "[missing PersonName]"
    name = PersonName(str(value)) if not isinstance(value, PersonName) else value
    if name.family_name and name.given_name:
        return f"{name.given_name} {name.family_name}"
    return str(value).replace("^", " ").strip()


def _referenced_object(item: Dataset) -> str:
    """The referenced object's SOP class name and instance UID (and frames, when only some are meant)."""
    reference = _first(item, "ReferencedSOPSequence")
    if reference is None:
        return "[missing ReferencedSOPSequence]"
    class_uid = _text(reference, "ReferencedSOPClassUID")
    instance_uid = _text(reference, "ReferencedSOPInstanceUID")
    name = UID(class_uid).name if class_uid else ""
    kind = name if name and name != class_uid else f"object of unknown SOP class {class_uid or '[missing]'}"
    details = f"instance {instance_uid or '[missing ReferencedSOPInstanceUID]'}"
    frames = _values(reference.get("ReferencedFrameNumber"))
    if frames:
        details += f", frame(s) {', '.join(str(n) for n in frames)}"
    return f"{kind} ({details})"


def _coordinates(item: Dataset, dimensions: int) -> str:
    graphic_type = _text(item, "GraphicType") or "[missing GraphicType]"
    count = len(_values(item.get("GraphicData")))
    if not count:
        return f"{graphic_type}, [missing GraphicData]"
    if count % dimensions:
        return f"{graphic_type}, [GraphicData holds {count} values, not {dimensions}-D points]"
    points = count // dimensions
    return f"{graphic_type}, {points} point{'s' if points != 1 else ''}"


def _time_coordinates(item: Dataset) -> str:
    range_type = _text(item, "TemporalRangeType") or "[missing TemporalRangeType]"
    for keyword in ("ReferencedSamplePositions", "ReferencedTimeOffsets", "ReferencedDateTime"):
        count = len(_values(item.get(keyword)))
        if count:
            return f"{range_type}, {count} time point{'s' if count != 1 else ''}"
    return f"{range_type}, [missing time references]"
