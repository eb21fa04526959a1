import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def lab_config():
    """The shipped lab config (config/config.yaml), as a fresh dict."""
    return copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
