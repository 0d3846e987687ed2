import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ecommerce"


@pytest.fixture
def example_spec_path() -> Path:
    return EXAMPLE / "spec.yaml"
