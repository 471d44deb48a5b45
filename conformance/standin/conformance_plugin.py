"""Pytest plugin for the Azure Files conformance run: the SDK test suite's markers; its playback-only tests skipped
as the SDK's own live runs skip them (they need a state that only the recordings have); and the short list of tests
that cannot pass offline, each with its reason (the stand-in also skips every test that asks for a Microsoft Entra
token). Nothing else is skipped here."""

import pytest

HOSTED_URL = "offline: expects the URL of an account hosted at *.file.core.windows.net (the emulator's are path-style)"
CANNOT_PASS_OFFLINE = {
    "test_make_file_url": HOSTED_URL,
    "test_make_file_url_no_directory": HOSTED_URL,
    "test_make_file_url_with_protocol": HOSTED_URL,
    "test_make_file_url_with_sas": HOSTED_URL,
    "test_update_range_from_file_url_with_oauth": "offline: copies from Azure Blob Storage with a Microsoft Entra token",
}

PLAYBACK_ONLY = "playback only: the SDK runs it from recordings, never live (it needs share soft delete set up through ARM)"


def pytest_configure(config):
    config.addinivalue_line("markers", "playback_test_only: runs against recordings only")
    config.addinivalue_line("markers", "live_test_only: runs live only")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("playback_test_only"):
            item.add_marker(pytest.mark.skip(reason=PLAYBACK_ONLY))
        elif item.name in CANNOT_PASS_OFFLINE:
            item.add_marker(pytest.mark.skip(reason=CANNOT_PASS_OFFLINE[item.name]))
