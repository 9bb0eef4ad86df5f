"""What compute the AI layer has: PyTorch's version and the devices it can run on."""

from __future__ import annotations


def describe_runtime() -> str:
    """PyTorch version and usable devices, in words. Imports torch (seconds, on first call)."""
    import torch

    from medviewer.ai.inference import model_threads, usable_cores

    devices = [f"CPU ({model_threads()} of {usable_cores()} cores for models)"]
    if torch.cuda.is_available():
        devices.insert(0, ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.insert(0, "Apple MPS")
    return f"PyTorch {torch.__version__}\nDevices: {'; '.join(devices)}"
