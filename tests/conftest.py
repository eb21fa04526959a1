import copy

import pytest
import yaml
from workflow_helpers import REPO


@pytest.fixture
def lab_config():
    """The shipped lab config (config/config.yaml), as a fresh dict."""
    return copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
