"""The saliency methods medviewer offers, by the name scripts pass and the name people read.

One list: the AI panel's menu, ``medviewer infer --saliency``'s choices and help, and the saliency
functions' table are all made from it, so a method cannot be offered in one place and missing in another.
"""

from __future__ import annotations

#: (name on the command line and in files, name in the window), in the order menus show them.
SALIENCY_METHODS: tuple[tuple[str, str], ...] = (
    ("gradcam", "Grad-CAM"),
    ("occlusion", "Occlusion"),
    ("ig", "Integrated gradients"),
)
METHOD_NAMES: tuple[str, ...] = tuple(name for name, _ in SALIENCY_METHODS)


def method_label(name: str) -> str:
    """The name a person reads for ``name``; an unknown name is a programming error."""
    return dict(SALIENCY_METHODS)[name]
