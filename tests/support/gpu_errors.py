"""The errors a full GPU raises, for the tests that make a model run out of memory on purpose."""

from __future__ import annotations

import torch

#: What running out of GPU memory looks like: eager PyTorch's two error types, and the plain RuntimeError that
#: a TorchScript module raises for the same failure on a real CUDA GPU (seen on an H200).
OUT_OF_MEMORY_ERRORS = {
    "cuda.OutOfMemoryError": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "OutOfMemoryError": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "TorchScript RuntimeError": lambda: RuntimeError(
        "The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript (most recent "
        "call last):\nRuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 139.72 GiB total "
        "capacity; 138.90 GiB already allocated)"
    ),
}
