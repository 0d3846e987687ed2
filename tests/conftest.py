import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ecommerce"


@pytest.fixture
def example_spec_path() -> Path:
    return EXAMPLE / "spec.yaml"


@pytest.fixture(autouse=True)
def _heavy_work_needs_its_marker(request, monkeypatch):
    """Keep `pytest -m "not model"` a fast lane: a test that loads a real model in this process
    without the `model` marker, or opens Chromium without `browser`, fails at once."""
    if request.node.get_closest_marker("model") is None:
        import llama_cpp

        def refuse_model(*args, **kwargs):
            raise AssertionError("this test loads a real model: mark it @pytest.mark.model")

        monkeypatch.setattr(llama_cpp, "Llama", refuse_model)
    if request.node.get_closest_marker("browser") is None:
        import playwright.sync_api

        def refuse_browser(*args, **kwargs):
            raise AssertionError("this test opens Chromium: mark it @pytest.mark.browser")

        monkeypatch.setattr(playwright.sync_api, "sync_playwright", refuse_browser)
