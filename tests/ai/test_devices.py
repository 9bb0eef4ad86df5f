"""The device is the fastest one present, or the one the user chose if it is present."""

from __future__ import annotations

import pytest
import torch

from medviewer.ai.devices import DeviceUnavailableError, choose_device
from medviewer.core.errors import MedviewerError


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_cpu_when_nothing_else_is_present(cpu_only: None):
    assert choose_device() == "cpu"
    assert choose_device("cpu") == "cpu"


def test_this_machine_has_no_gpu_so_cpu():
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU")
    assert choose_device() == "cpu"


def test_cuda_comes_before_mps(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert choose_device() == "cuda"
    assert choose_device("mps") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device() == "mps"


@pytest.mark.parametrize("override", ["cuda", "mps"])
def test_an_absent_override_is_an_error_naming_it(cpu_only: None, override: str):
    with pytest.raises(DeviceUnavailableError) as raised:
        choose_device(override)
    assert isinstance(raised.value, MedviewerError)
    assert str(raised.value) == f"{override}: was asked for but is not available on this computer (available: cpu)"


def test_an_unknown_override_is_an_error(cpu_only: None):
    with pytest.raises(DeviceUnavailableError, match="tpu: is not a device medviewer knows"):
        choose_device("tpu")
