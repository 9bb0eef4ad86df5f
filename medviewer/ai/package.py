"""Model packages: a MONAI bundle folder, or one TorchScript or torch.export file with the bundle's metadata inside.

``torch.jit.load`` runs code from the file, so nothing here hands a file to torch before the registry has
matched its SHA-256 (``load_module``). The metadata is therefore read with ``zipfile``: TorchScript and
torch.export files are zip archives, and both keep their extra files as ``<archive>/extra/<name>`` (the
archive name follows the file name for TorchScript and is ``model`` for torch.export).

MONAI's metadata (``name``, ``version``, ``description``, ``intended_use``, ``network_data_format``) says
what the model is; its ``medviewer`` block says what a viewer needs to run it::

    "medviewer": {
      "target": "slice | volume | slide_patch",
      "input": {"shape": [224, 224], "channels": 1, "spacing_mm": [0.8, 0.8], "mpp": 0.5,
                "intensity": {"window": [-1000, 400]}},
      "output": {"activation": "softmax | sigmoid | none", "classes": ["normal", "lesion"]},
      "explain": {"features": "forward_features", "head": "forward_head"},
      "diagnostic_use": false
    }

``shape``, ``channels`` and ``classes`` may be left to ``network_data_format`` (``inputs.image.spatial_shape``
and ``num_channels``; ``outputs.pred.num_channels`` and ``channel_def``); where both say, they must agree, as
a model run with the wrong classes gives confident nonsense. ``intensity`` is a ``window`` (values clipped to
it, then mapped to 0..1), or a ``scale`` ``{"mean": [...], "std": [...], "max": 255}`` (values divided by
``max``, then standardised per channel), or absent (values as read). ``mpp`` is required for ``slide_patch``
models, whose patches are cut at it. ``diagnostic_use`` is true only when the model's makers cleared it for
diagnosis; otherwise every view of its results says "not for diagnostic use".
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, cast

from medviewer.ai import registry
from medviewer.core.errors import MedviewerError, PathNotFoundError
from medviewer.io.memory_guard import refuse_if_too_large

if TYPE_CHECKING:
    import torch

Target = Literal["slice", "volume", "slide_patch"]
Activation = Literal["softmax", "sigmoid", "none"]
WeightsFormat = Literal["torchscript", "export"]
_FORMAT_WORDS = {"torchscript": "TorchScript model", "export": "torch.export program"}

#: Spatial dimensions of each target's input: a slice and a slide patch are 2D, a volume 3D.
TARGET_DIMENSIONS: dict[str, int] = {"slice": 2, "volume": 3, "slide_patch": 2}
ACTIVATIONS = ("softmax", "sigmoid", "none")
#: Spellings of MONAI's ``outputs.pred`` that real bundles use for a classifier's output.
PRED_TYPES = ("probabilities", "probability")
PRED_FORMATS = ("classes", "classification")
SEGMENTATION_FORMATS = ("labels", "segmentation")
#: Bundle layout: where each weights format lives.
BUNDLE_WEIGHTS: dict[str, str] = {"torchscript": "models/model.ts", "export": "models/model.pt2"}
BUNDLE_METADATA = "configs/metadata.json"
BUNDLE_CARD = "docs/README.md"
#: An untrusted file is read before approval; a metadata member larger than this is a decompression bomb,
#: not metadata. The demo models' metadata, with the guard's 64 x 64 covariance, is 65 to 130 kB; a
#: MONAI model-zoo bundle's a few kB.
MAX_METADATA_BYTES = 4 * 1024 * 1024
#: A card is what a person reads before approving: a long one with tables is tens of kB (the demo cards 8 kB);
#: a card past this is not one anybody reads, and would be held and printed whole.
MAX_CARD_BYTES = 256 * 1024
#: How much of an archive member is inflated at a time when its size is checked.
INFLATE_STEP_BYTES = 1024 * 1024


class ModelPackageError(MedviewerError):
    """The path is not a model package, or its metadata is missing, malformed or contradicts itself."""


@dataclass(frozen=True)
class IntensityWindow:
    low: float
    high: float


@dataclass(frozen=True)
class IntensityScale:
    """Per-channel standardisation; ``mean`` and ``std`` hold one value for all channels or one per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    max_value: float


@dataclass(frozen=True)
class ExplainSpec:
    """Names of the methods that split the model for Grad-CAM: ``forward == head(features(x))``."""

    features: str
    head: str


@dataclass(frozen=True)
class ModelSpec:
    """What preprocessing, inference and saliency need to know, checked once when the package is read."""

    target: Target
    shape: tuple[int, ...]
    channels: int
    spacing_mm: tuple[float, ...] | None
    mpp: float | None
    intensity: IntensityWindow | IntensityScale | None
    activation: Activation
    classes: tuple[str, ...]
    explain: ExplainSpec | None
    diagnostic_use: bool


@dataclass(frozen=True)
class ModelPackage:
    """A model as read from disk: identity, weights files (not yet loaded) and its checked spec."""

    source: Path
    name: str
    version: str
    description: str
    intended_use: str
    weights: dict[str, Path]
    metadata: dict[str, Any]
    card: str
    spec: ModelSpec
    #: Where the name came from when the metadata has no ``name`` (MONAI's schema does not require one):
    #: "task" or "file name"; "" when the metadata names the model itself.
    name_from: str = ""
    #: SHA-256 of each file beside the weights that decides what the model's outputs mean (a bundle's
    #: metadata and card), by path in the bundle; approval pins these with the weights. A single file has
    #: none: its metadata is inside the weights file, pinned by the weights' own hash.
    pinned: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class LoadedModel:
    """A module with the identity every result must carry: its package, weights format and hash, device."""

    package: ModelPackage
    module: torch.nn.Module
    format: WeightsFormat
    sha256: str
    device: str


def read_package(path: Path) -> ModelPackage:
    """Read a bundle folder or a single ``.ts``/``.pt2`` file; raises ModelPackageError naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    return _read_bundle(path) if path.is_dir() else _read_single_file(path)


def _read_bundle(folder: Path) -> ModelPackage:
    metadata_file = folder / BUNDLE_METADATA
    if not metadata_file.is_file():
        raise ModelPackageError(folder, f"not a model package: it has no {BUNDLE_METADATA}")
    raw_metadata = _read_capped(metadata_file, MAX_METADATA_BYTES, "metadata")
    metadata = _parse_json(metadata_file, raw_metadata, "")
    fields = _Fields(metadata_file, "", metadata)
    name, name_from = _name(fields, folder)
    version = fields.label("version", fields.text("version"))
    weights: dict[str, Path] = {}
    for weights_format, relative in BUNDLE_WEIGHTS.items():
        file = folder / relative
        if not file.is_file():
            continue
        found_format, embedded = _inspect_archive(file)
        if found_format != weights_format:
            raise ModelPackageError(file, f"is a {_FORMAT_WORDS[found_format]}, not a {_FORMAT_WORDS[weights_format]}")
        if embedded is not None:
            _require_same_identity(file, embedded, None if name_from else name, version)
        weights[weights_format] = file
    if not weights:
        raise ModelPackageError(folder, f"has no weights: neither {' nor '.join(BUNDLE_WEIGHTS.values())} exists")
    card_file = folder / BUNDLE_CARD
    raw_card = _read_capped(card_file, MAX_CARD_BYTES, "a model card") if card_file.is_file() else b""
    pinned = {BUNDLE_METADATA: hashlib.sha256(raw_metadata).hexdigest()}
    if card_file.is_file():
        pinned[BUNDLE_CARD] = hashlib.sha256(raw_card).hexdigest()
    package = _package(folder, fields, weights, raw_card.decode("utf-8", errors="replace"))
    return replace(package, pinned=pinned)


def _read_capped(file: Path, limit: int, what: str) -> bytes:
    """A text file of the package, refused past ``limit`` bytes before it is read: a 100 MB "card" is not
    one a person reads before approving, and would be held and printed whole."""
    try:
        with open(file, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ModelPackageError(file, f"cannot be read ({exc.strerror})") from exc
    if len(data) > limit:
        raise ModelPackageError(file, f"is over {limit // 1024} KiB, too large for {what}; it was not read")
    return data


def _read_single_file(file: Path) -> ModelPackage:
    weights_format, metadata = _inspect_archive(file)
    if metadata is None:
        raise ModelPackageError(
            file,
            f"is a {_FORMAT_WORDS[weights_format]} without metadata.json in its extra files; export it with "
            "monai.bundle ckpt_export, or package it as a bundle folder with configs/metadata.json",
        )
    fields = _Fields(file, "metadata.json: ", metadata)
    return _package(file, fields, {weights_format: file}, "")


def _inspect_archive(file: Path) -> tuple[WeightsFormat, dict[str, Any] | None]:
    """The weights format and the embedded metadata.json (None when absent), read without torch."""
    with _archive_errors(file), zipfile.ZipFile(file) as archive:
        members = archive.infolist()
        names = [member.filename.split("/") for member in members]
        if any(parts[1:] == ["archive_format"] for parts in names):
            weights_format: WeightsFormat = "export"
        elif any(parts[1:] == ["constants.pkl"] for parts in names):
            weights_format = "torchscript"
        else:
            raise ModelPackageError(
                file,
                "is a zip archive but neither a TorchScript model nor a torch.export program (a checkpoint "
                "of weights alone cannot be run; export the network with monai.bundle ckpt_export)",
            )
        _refuse_declared_sizes(file, members)
        metadata = next((m for m in members if m.filename.split("/")[1:] == ["extra", "metadata.json"]), None)
        if metadata is None:
            return weights_format, None
        if metadata.file_size > MAX_METADATA_BYTES:
            raise ModelPackageError(file, f"its metadata.json is {metadata.file_size} bytes, too large to be metadata")
        raw = _read_member(file, archive, metadata, keep=True)
    return weights_format, _parse_json(file, raw, "metadata.json: ")


@contextmanager
def _archive_errors(file: Path) -> Iterator[None]:
    """What ``zipfile`` raises on a damaged or hostile archive, as a ModelPackageError naming the file."""
    try:
        yield
    except MedviewerError:
        raise
    except (zlib.error, EOFError) as exc:
        raise ModelPackageError(file, f"is a damaged zip archive ({exc})") from exc
    except (NotImplementedError, RuntimeError) as exc:  # another compression method, an encrypted member
        raise ModelPackageError(file, f"holds an archive member that cannot be read ({exc})") from exc
    except zipfile.BadZipFile as exc:
        raise ModelPackageError(
            file, "is not a model: TorchScript and torch.export files are zip archives, and this is not one"
        ) from exc
    except OSError as exc:
        raise ModelPackageError(file, f"cannot be read ({exc.strerror or exc})") from exc


def _refuse_declared_sizes(file: Path, members: list[zipfile.ZipInfo]) -> None:
    """torch holds each record at the size its header declares, so together they must fit the memory budget."""
    declared = sum(member.file_size for member in members)
    refuse_if_too_large(file, declared, f"its {len(members)} archive members ({declared} bytes declared)")


def _read_member(file: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo, keep: bool) -> bytes:
    """A member inflated a step at a time and checked against its header: its bytes when ``keep``, else b"".

    ``ZipFile.read`` inflated up to 2 GiB in one step before cutting to the declared size, so a member
    declaring a few bytes over a stream of zeros took gigabytes. Here the stream is inflated at most a step
    past its declared size, and a stream longer or shorter than declared, unfinished or with another CRC is
    named as damaged (zipfile alone stops at the declared size and never sees a longer stream)."""
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ModelPackageError(
            file,
            f"its {member.filename} is compressed with method {member.compress_type}, which torch archives never use",
        )
    stored = copy.copy(member)  # the member's bytes as they lie in the archive, read by zipfile as they are
    # A CRC of None is zipfile's own "nothing to check" (the inflated stream is checked below); typeshed says int.
    stored.compress_type, stored.file_size, stored.CRC = zipfile.ZIP_STORED, member.compress_size, None  # type: ignore[assignment]
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if member.compress_type == zipfile.ZIP_DEFLATED else None
    kept, size, crc = bytearray(), 0, 0
    with archive.open(stored) as stream:
        while chunk := stream.read(INFLATE_STEP_BYTES):
            while chunk:
                part = chunk if inflater is None else inflater.decompress(chunk, INFLATE_STEP_BYTES)
                chunk = b"" if inflater is None else inflater.unconsumed_tail
                size, crc = size + len(part), zlib.crc32(part, crc)
                if size > member.file_size:
                    raise ModelPackageError(
                        file, f"its {member.filename} inflates past the {member.file_size} bytes its header declares"
                    )
                if keep:
                    kept += part
    finished = inflater is None or inflater.eof
    if not finished or size != member.file_size or crc != member.CRC:
        raise ModelPackageError(file, f"its {member.filename} is damaged or not what its header declares")
    return bytes(kept)


def _check_archive(file: Path, data: bytes) -> None:
    """Every member of the approved bytes checked before torch reads them: the declared sizes within the
    memory budget, each stream inflated in steps up to its declared size and matching its CRC. torch reads a
    record only up to its declared size, but takes a member that is not what its header declares silently."""
    with _archive_errors(file), zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        _refuse_declared_sizes(file, members)
        for member in members:
            _read_member(file, archive, member, keep=False)


def _parse_json(file: Path, raw: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
        raise ModelPackageError(file, f"{where}not valid JSON ({exc})") from exc
    except RecursionError:
        raise ModelPackageError(file, f"{where}nested too deeply to be metadata") from None
    if not isinstance(value, dict):
        raise ModelPackageError(file, f"{where}holds a JSON {type(value).__name__}, not an object")
    return value


def _require_same_identity(file: Path, embedded: dict[str, Any], name: Any, version: str) -> None:
    """A bundle whose weights were exported from another model version is contradictory metadata; ``name``
    is None when the bundle's metadata gives none (it is then named from its task or folder)."""
    for field, expected in (("name", name), ("version", version)):
        if expected is not None and field in embedded and embedded[field] != expected:
            raise ModelPackageError(
                file,
                f"its embedded metadata.json has {field} {embedded[field]!r} but {BUNDLE_METADATA} has {expected!r}",
            )


def _name(fields: _Fields, source: Path) -> tuple[str, str]:
    """The model's name and where it came from: ``name``, else MONAI's ``task``, else the bundle folder's
    or file's name. MONAI's metadata schema does not require ``name``, and model-zoo bundles older than
    2023 have none; refusing them would refuse bundles that are valid as MONAI defines them."""
    if fields.get("name") is not None:
        return fields.label("name", fields.text("name")), ""
    task = fields.text("task", required=False).strip()
    if task:
        return fields.label("task", task), "task"
    return fields.label("the file name", source.name if source.is_dir() else source.stem), "file name"


def _package(source: Path, fields: _Fields, weights: dict[str, Path], card: str) -> ModelPackage:
    name, name_from = _name(fields, source)
    return ModelPackage(
        source=source,
        name=name,
        name_from=name_from,
        version=fields.label("version", fields.text("version")),
        description=fields.text("description", required=False),
        intended_use=fields.text("intended_use", required=False),
        weights=weights,
        metadata=fields.metadata,
        card=card,
        spec=_spec(fields),
    )


class _Fields:
    """Dotted-path access to the metadata whose errors name the file and the exact field."""

    def __init__(self, file: Path, where: str, metadata: dict[str, Any]) -> None:
        self.file, self.where, self.metadata = file, where, metadata

    def fail(self, reason: str) -> NoReturn:
        raise ModelPackageError(self.file, self.where + reason)

    def get(self, dotted: str) -> Any:
        value: Any = self.metadata
        walked: list[str] = []
        for key in dotted.split("."):
            if value is None:
                return None
            if not isinstance(value, dict):
                self.fail(f"{'.'.join(walked)} is not an object")
            value = value.get(key)
            walked.append(key)
        return value

    def text(self, dotted: str, required: bool = True) -> str:
        value = self.get(dotted)
        if value is None and not required:
            return ""
        if value is None:
            self.fail(f"{dotted} is missing")
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{dotted} is {value!r}, not a non-empty string")
        return value

    def label(self, dotted: str, value: str) -> str:
        """A name printed as a line of its own (the model's name and version, a class name): a control
        character, a line break or a bidirectional override in it could forge or hide medviewer's own lines
        ("lesion: 0.99") in a terminal, so it is refused rather than shown."""
        if not value.isprintable():
            self.fail(f"{dotted} is {value!r}; it holds control or formatting characters")
        return value

    def positive_int(self, dotted: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fail(f"{dotted} is {value!r}, not a positive whole number")
        return value

    def numbers(self, dotted: str, value: Any, positive: bool) -> tuple[float, ...]:
        if not isinstance(value, list) or not value or not all(_is_number(v) for v in value):
            self.fail(f"{dotted} is {value!r}, not a list of numbers")
        if positive and any(v <= 0 for v in value):
            self.fail(f"{dotted} is {value!r}; every value must be positive")
        return tuple(float(v) for v in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _spec(fields: _Fields) -> ModelSpec:
    if fields.get("medviewer") is None:
        fields.fail("medviewer is missing (the block that says the model's target, input and output)")
    target = fields.text("medviewer.target")
    if target not in TARGET_DIMENSIONS:
        fields.fail(f"medviewer.target is {target!r}; expected one of {', '.join(TARGET_DIMENSIONS)}")
    _check_pred_kind(fields)
    shape = _shape(fields, target)
    channels = _agreeing_int(fields, "medviewer.input.channels", "network_data_format.inputs.image.num_channels")
    spacing = fields.get("medviewer.input.spacing_mm")
    spacing_mm = None if spacing is None else fields.numbers("medviewer.input.spacing_mm", spacing, positive=True)
    if spacing_mm is not None and len(spacing_mm) != len(shape):
        fields.fail(
            f"medviewer.input.spacing_mm has {len(spacing_mm)} values but medviewer.input.shape has {len(shape)}"
        )
    mpp = fields.get("medviewer.input.mpp")
    if mpp is not None and (not _is_number(mpp) or mpp <= 0):
        fields.fail(f"medviewer.input.mpp is {mpp!r}, not a positive number of micrometres per pixel")
    if target == "slide_patch" and mpp is None:
        fields.fail(
            "medviewer.input.mpp is missing; a slide_patch model needs the micrometres per pixel it was trained at"
        )
    activation = fields.text("medviewer.output.activation")
    if activation not in ACTIVATIONS:
        fields.fail(f"medviewer.output.activation is {activation!r}; expected one of {', '.join(ACTIVATIONS)}")
    classes = _classes(fields)
    if activation == "softmax" and len(classes) < 2:
        fields.fail(
            f"medviewer.output.activation is softmax but there is {len(classes)} class; softmax needs 2 or more"
        )
    diagnostic_use = fields.get("medviewer.diagnostic_use")
    if diagnostic_use is not None and not isinstance(diagnostic_use, bool):
        fields.fail(f"medviewer.diagnostic_use is {diagnostic_use!r}, not true or false")
    return ModelSpec(
        target=cast(Target, target),
        shape=shape,
        channels=channels,
        spacing_mm=spacing_mm,
        mpp=None if mpp is None else float(mpp),
        intensity=_intensity(fields, channels),
        activation=cast(Activation, activation),
        classes=classes,
        explain=_explain(fields),
        diagnostic_use=bool(diagnostic_use),
    )


def _check_pred_kind(fields: _Fields) -> None:
    pred_type = fields.get("network_data_format.outputs.pred.type")
    if pred_type is not None and pred_type not in PRED_TYPES:
        fields.fail(
            f"network_data_format.outputs.pred.type is {pred_type!r}; a classifier's output is "
            f"{' or '.join(PRED_TYPES)}"
        )
    pred_format = fields.get("network_data_format.outputs.pred.format")
    if pred_format in SEGMENTATION_FORMATS:
        fields.fail(
            f"network_data_format.outputs.pred.format is {pred_format!r}, a segmentation output; medviewer's "
            f"targets are classifiers ({' or '.join(PRED_FORMATS)})"
        )
    if pred_format is not None and pred_format not in PRED_FORMATS:
        fields.fail(f"network_data_format.outputs.pred.format is {pred_format!r}; expected {' or '.join(PRED_FORMATS)}")


def _shape(fields: _Fields, target: str) -> tuple[int, ...]:
    own, monai_field = "medviewer.input.shape", "network_data_format.inputs.image.spatial_shape"
    declared, monai_shape = fields.get(own), fields.get(monai_field)
    # MONAI allows symbolic sizes such as "16*n"; only fixed sizes can be checked against or used.
    monai_fixed = isinstance(monai_shape, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in monai_shape
    )
    if declared is None:
        if monai_shape is None:
            fields.fail(f"{own} is missing (and so is {monai_field})")
        if not monai_fixed:
            fields.fail(f"{own} is missing and {monai_field} {monai_shape!r} is not a list of fixed sizes")
        declared, own = monai_shape, monai_field
    if not isinstance(declared, list) or not declared:
        fields.fail(f"{own} is {declared!r}, not a list of sizes")
    shape = tuple(fields.positive_int(f"{own}[{i}]", v) for i, v in enumerate(declared))
    if monai_fixed and list(shape) != monai_shape:
        fields.fail(f"medviewer.input.shape is {list(shape)} but {monai_field} is {monai_shape}")
    if len(shape) != TARGET_DIMENSIONS[target]:
        fields.fail(f"{own} has {len(shape)} sizes but a {target} model takes {TARGET_DIMENSIONS[target]}")
    return shape


def _agreeing_int(fields: _Fields, own: str, monai_field: str) -> int:
    declared, monai_value = fields.get(own), fields.get(monai_field)
    if declared is None and monai_value is None:
        fields.fail(f"{own} is missing (and so is {monai_field})")
    values = {
        field: fields.positive_int(field, v)
        for field, v in ((own, declared), (monai_field, monai_value))
        if v is not None
    }
    if len(set(values.values())) > 1:
        fields.fail(f"{own} is {declared} but {monai_field} is {monai_value}")
    return next(iter(values.values()))


def _classes(fields: _Fields) -> tuple[str, ...]:
    own, channel_def_field = "medviewer.output.classes", "network_data_format.outputs.pred.channel_def"
    count_field = "network_data_format.outputs.pred.num_channels"
    declared, channel_def, count = fields.get(own), fields.get(channel_def_field), fields.get(count_field)
    from_monai = None if channel_def is None else _channel_def_names(fields, channel_def_field, channel_def)
    if declared is None:
        if from_monai is None:
            fields.fail(f"{own} is missing (and so is {channel_def_field})")
        classes, source = from_monai, channel_def_field
    else:
        if (
            not isinstance(declared, list)
            or not declared
            or not all(isinstance(c, str) and c.strip() for c in declared)
        ):
            fields.fail(f"{own} is {declared!r}, not a list of class names")
        if from_monai is not None and tuple(declared) != from_monai:
            fields.fail(f"{own} is {declared} but {channel_def_field} names {list(from_monai)}")
        classes, source = tuple(declared), own
    for index, name in enumerate(classes):
        fields.label(f"{source}[{index}]", name)
    if len(set(classes)) != len(classes):
        fields.fail(f"{source} names a class twice: {list(classes)}")
    if count is not None and fields.positive_int(count_field, count) != len(classes):
        fields.fail(f"{source} has {len(classes)} names but {count_field} is {count}")
    return classes


def _channel_def_names(fields: _Fields, field: str, channel_def: Any) -> tuple[str, ...]:
    """MONAI's ``{"0": "normal", "1": "lesion"}``, in channel order; every channel from 0 must be named."""
    keys = [str(i) for i in range(len(channel_def))] if isinstance(channel_def, dict) else []
    if not isinstance(channel_def, dict) or set(channel_def) != set(keys):
        fields.fail(f"{field} is {channel_def!r}, not names for channels 0, 1, ...")
    names = tuple(channel_def[key] for key in keys)
    if not all(isinstance(n, str) and n.strip() for n in names):
        fields.fail(f"{field} is {channel_def!r}; every channel name must be a non-empty string")
    return names


def _intensity(fields: _Fields, channels: int) -> IntensityWindow | IntensityScale | None:
    field = "medviewer.input.intensity"
    intensity = fields.get(field)
    if intensity is None:
        return None
    if not isinstance(intensity, dict) or set(intensity) not in ({"window"}, {"scale"}):
        fields.fail(f"{field} is {intensity!r}; it must hold either window or scale")
    if "window" in intensity:
        window = fields.numbers(f"{field}.window", intensity["window"], positive=False)
        if len(window) != 2 or window[0] >= window[1]:
            fields.fail(f"{field}.window is {intensity['window']!r}, not [low, high] with low < high")
        return IntensityWindow(*window)
    scale = intensity["scale"]
    if not isinstance(scale, dict):
        fields.fail(f"{field}.scale is {scale!r}, not an object with mean and std")
    for key in ("mean", "std"):
        if key not in scale:
            fields.fail(f"{field}.scale.{key} is missing")
    mean = fields.numbers(f"{field}.scale.mean", scale["mean"], positive=False)
    std = fields.numbers(f"{field}.scale.std", scale["std"], positive=True)
    for key, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            fields.fail(f"{field}.scale.{key} has {len(values)} values; expected 1 or one per channel ({channels})")
    max_value = scale.get("max", 1)
    if not _is_number(max_value) or max_value <= 0:
        fields.fail(f"{field}.scale.max is {max_value!r}, not a positive number")
    return IntensityScale(mean, std, float(max_value))


def _explain(fields: _Fields) -> ExplainSpec | None:
    if fields.get("medviewer.explain") is None:
        return None
    return ExplainSpec(fields.text("medviewer.explain.features"), fields.text("medviewer.explain.head"))


def load_module(package: ModelPackage, prefer: WeightsFormat = "torchscript", device: str = "cpu") -> LoadedModel:
    """Load the preferred weights format (else the other) only if the registry approves the file's SHA-256.

    The bytes are read once, hashed and checked, and torch is given those same bytes: a file swapped
    between the check and the load cannot slip through. A TorchScript module is put in eval mode; a
    torch.export program keeps the mode it was exported in (torch.export cannot switch it)."""
    if prefer not in _FORMAT_WORDS:
        raise ValueError(f"prefer must be one of {', '.join(_FORMAT_WORDS)}, not {prefer!r}")
    weights_format = cast(WeightsFormat, prefer if prefer in package.weights else next(iter(package.weights)))
    file = package.weights[weights_format]
    data, digest = registry.read_approved(file, package)
    _check_archive(file, data)
    import torch

    try:
        if weights_format == "torchscript":
            with warnings.catch_warnings():
                # torch 2.13 deprecates torch.jit; the warning speaks to model authors, not to people viewing images.
                warnings.filterwarnings(
                    "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
                )
                # torch.jit.load carries no annotations, which --strict refuses to call from typed code.
                module = torch.jit.load(io.BytesIO(data), map_location=device).eval()  # type: ignore[no-untyped-call]
        else:
            from torch.export.passes import move_to_device_pass

            module = move_to_device_pass(torch.export.load(io.BytesIO(data)), device).module()
    except Exception as exc:  # torch reports damaged archives as RuntimeError, KeyError, pickle errors and more
        raise ModelPackageError(
            file, f"is approved but torch cannot load it as a {_FORMAT_WORDS[weights_format]}: {exc}"
        ) from exc
    return LoadedModel(package, module, weights_format, digest, device)
