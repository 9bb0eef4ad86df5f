"""Which device a model runs on: the fastest one present, unless the user chose one.

CUDA comes first and Apple's MPS next because either is many times faster than the CPU for convolutions;
the CPU is always there. A device the user asks for but this computer lacks is an error rather than a
silent fallback, so a result never claims a device it did not run on.
"""

from __future__ import annotations

from medviewer.core.errors import MedviewerError

#: In order of preference.
DEVICES = ("cuda", "mps", "cpu")


class DeviceUnavailableError(MedviewerError):
    """The device asked for is unknown or not present; the message names it and what is available."""


def available_devices() -> list[str]:
    """The devices PyTorch can use here, fastest first; always ends with "cpu"."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def choose_device(override: str | None = None) -> str:
    """``override`` if given and present, else the first of CUDA, MPS and CPU that is present."""
    available = available_devices()
    if override is None:
        return available[0]
    if override not in DEVICES:
        raise DeviceUnavailableError(override, f"is not a device medviewer knows; choose one of {', '.join(DEVICES)}")
    if override not in available:
        raise DeviceUnavailableError(
            override, f"was asked for but is not available on this computer (available: {', '.join(available)})"
        )
    return override
