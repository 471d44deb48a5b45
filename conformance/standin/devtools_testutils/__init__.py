"""The thinnest stand-in for the Azure SDK's test framework (`devtools_testutils`, never published on PyPI) that
the storage tests of `azure-storage-file-share` import, for running them live against the emulator
(conformance/azure_files.py). Live only: recording, playback and the test proxy's sanitizers are no-ops.

The storage account comes from the environment (STORAGE_ACCOUNT_NAME / _KEY, the secondary and premium ones the
same way), as the framework's live mode reads it; the runner creates the accounts through ARM and sets them.
"""

from __future__ import annotations

import functools
import hashlib
import os

import pytest

from devtools_testutils.fake_credentials import STORAGE_ACCOUNT_FAKE_KEY  # noqa: F401  (re-exported)

OFFLINE = "offline: a Microsoft Entra token credential (the emulator takes shared keys and SAS only)"


def is_live() -> bool:
    return True


class EnvironmentVariableOptions:
    def __init__(self, hide_secrets=None):
        self.hide_secrets = hide_secrets or []


class Secret(str):
    """A value the framework hides from recordings: the tests read it as `.secret`."""

    @property
    def secret(self) -> str:
        return str(self)


class EnvironmentVariableLoader:
    """`@FileSharePreparer()`: the test gets each keyword (storage_account_name, ...) from the variable of its
    upper-case name; those the options hide as secrets, as Secret."""

    def __init__(self, directory, options=None, **defaults):
        self.names = list(defaults)
        self.secrets = set(options.hide_secrets if options is not None else [])

    def __call__(self, test):
        @functools.wraps(test)
        def prepared(*args, **kwargs):
            for name in self.names:
                value = os.environ[name.upper()]
                kwargs.setdefault(name, Secret(value) if name in self.secrets else value)
            return test(*args, **kwargs)

        return prepared


def recorded_by_proxy(test):
    @functools.wraps(test)
    def live(*args, **kwargs):
        kwargs.pop("variables", None)
        test(*args, **kwargs)

    return live


@pytest.fixture(scope="session")
def test_proxy():
    yield


def _no_sanitizer(*args, **kwargs):
    """Live runs record nothing, so there is nothing to sanitize."""


add_body_regex_sanitizer = add_general_regex_sanitizer = add_header_regex_sanitizer = _no_sanitizer
add_oauth_response_sanitizer = add_uri_string_sanitizer = set_custom_default_matcher = _no_sanitizer
add_remove_header_sanitizer = add_uri_regex_sanitizer = _no_sanitizer


class AzureRecordedTestCase:
    is_live = True

    def is_playback(self) -> bool:
        return False

    def get_resource_name(self, name: str) -> str:
        """The same name for the same prefix within one test, another in every other test."""
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        return name + hashlib.sha256(f"{test}/{name}".encode()).hexdigest()[:10]

    create_random_name = get_resource_name

    def get_credential(self, client_class, **kwargs):
        pytest.skip(OFFLINE)

    def sleep(self, seconds: float) -> None:
        import time

        time.sleep(seconds)

    def generate_sas(self, sas_function, *args, **kwargs):
        kwargs.pop("fake_value", None)
        return sas_function(*args, **kwargs)
