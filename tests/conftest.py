import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_feature_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own feature cache so nothing leaks between tests or into ~/.cache."""
    monkeypatch.setenv("DIFFUSIONTALKER_CACHE", str(tmp_path_factory.mktemp("feature-cache")))
