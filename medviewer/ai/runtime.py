"""What compute the AI layer has: PyTorch's version and the devices it can run on."""

from __future__ import annotations


def describe_runtime() -> str:
    """PyTorch version and usable devices (as ``devices.available_devices`` finds them, fastest first), in
    words. Imports torch (seconds, on first call)."""
    import torch

    from medviewer.ai.devices import available_devices

    devices = "; ".join(_device_name(device) for device in available_devices())
    return f"PyTorch {torch.__version__}\nDevices: {devices}"


def _device_name(device: str) -> str:
    import torch

    from medviewer.ai.inference import model_threads, usable_cores

    if device == "cuda":
        return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    if device == "mps":
        return "Apple MPS"
    return f"CPU ({model_threads()} of {usable_cores()} cores for models)"
