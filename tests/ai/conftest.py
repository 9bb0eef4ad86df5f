"""The tiny classifier exported once per session, as MONAI's ckpt_export and torch.export write it."""

from __future__ import annotations

import pytest

from tests.support.tiny_bundle import Exported, export_tiny


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return export_tiny(tmp_path_factory.mktemp("tiny"))
