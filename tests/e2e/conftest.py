"""End-to-end tests: a real graphcomms over real HTTP, through the plugin."""

from __future__ import annotations

import pytest

# the SDKs' generated code warns about the SDKs' own deprecated classes;
# that is the SDK talking to itself, not about graphcomms
SDK_WARNINGS = (
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence the SDKs' own deprecation warnings in this directory."""
    for item in items:
        if "/e2e/" in str(item.path).replace("\\", "/"):
            for mark in SDK_WARNINGS:
                item.add_marker(mark)
