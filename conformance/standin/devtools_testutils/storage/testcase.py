"""StorageRecordedTestCase: account URLs of the emulator, deterministic data, the assertions the tests share."""

from __future__ import annotations

import logging
import math
import os
import random
import zlib
from datetime import datetime
from io import StringIO

import pytest

from devtools_testutils import AzureRecordedTestCase

LOGGING_FORMAT = "%(asctime)s %(name)-20s %(levelname)-5s %(message)s"
# `{account}` is replaced: the emulator's Azure Files is path-style (https://127.0.0.1:PORT/ACCOUNT).
ACCOUNT_URL_VARIABLE = "CONFORMANCE_FILE_ACCOUNT_URL"


class StorageRecordedTestCase(AzureRecordedTestCase):
    def setup_method(self, _):
        self.logger = logging.getLogger("azure.storage")

    def account_url(self, storage_account: str, storage_type: str) -> str:
        if storage_type != "file":  # the emulator serves Azure Files only: tests that use another are skipped
            return f"https://{storage_account}.{storage_type}.core.windows.net"
        return os.environ[ACCOUNT_URL_VARIABLE].format(account=storage_account)

    def connection_string(self, account_name: str, key: str) -> str:
        return (f"DefaultEndpointsProtocol=https;AccountName={account_name};AccountKey={key};"
                f"FileEndpoint={self.account_url(account_name, 'file')}")

    def get_random_bytes(self, size: int) -> bytes:
        return b"a" * size

    def get_random_text_data(self, size: int) -> str:
        rand = random.Random(zlib.adler32(os.environ.get("PYTEST_CURRENT_TEST", "").encode()))
        words, text = ["hello", "world", "python", "啊齄丂狛狜"], ""
        while len(text) < size:
            text += " " + words[int(rand.random() * (len(words) - 1))]
        return text

    def get_datetime_variable(self, variables, name, dt):
        return datetime.strptime(variables.setdefault(name, dt.isoformat()), "%Y-%m-%dT%H:%M:%S.%f")

    def assertNamedItemInContainer(self, container, item_name, msg=None):
        for item in container:
            name = item if isinstance(item, str) else item["name"] if isinstance(item, dict) else item.name
            if name == item_name or getattr(item, "snapshot", None) == item_name:
                return
        pytest.fail(f"{item_name!r} not found in {[str(c) for c in container]}")

    def assertNamedItemNotInContainer(self, container, item_name, msg=None):
        if any(item.name == item_name for item in container):
            pytest.fail(f"{item_name!r} unexpectedly found in {container!r}")

    def assert_upload_progress(self, size, max_chunk_size, progress, unknown_size=False):
        total = None if unknown_size else size
        small = size % max_chunk_size
        assert len(progress) == math.ceil(size / max_chunk_size)
        for current, whole in progress:
            assert current % max_chunk_size in (0, small) and whole == total

    def assert_download_progress(self, size, max_chunk_size, max_get_size, progress):
        if size <= max_get_size:
            assert len(progress) == 1
            return
        small = (size - max_get_size) % max_chunk_size
        assert len(progress) == 1 + math.ceil((size - max_get_size) / max_chunk_size)
        for current, whole in progress[1:]:
            assert current % max_chunk_size in (0, small) and whole == size

    def enable_logging(self):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOGGING_FORMAT))
        self.logger.handlers = [handler]
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = True
        self.logger.disabled = False

    def configure_logging(self):
        self.enable_logging()


class LogCaptured:
    """The `azure.storage` log of a block, as a string stream."""

    def __init__(self, test_case=None):
        self.test_case = test_case

    def __enter__(self):
        self.test_case.enable_logging()
        self.log_stream = StringIO()
        self.handler = logging.StreamHandler(self.log_stream)
        self.handler.setFormatter(logging.Formatter(LOGGING_FORMAT))
        self.logger = logging.getLogger("azure.storage")
        self.logger.level = logging.DEBUG
        self.logger.addHandler(self.handler)
        return self.log_stream

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.log_stream.close()
        self.test_case.configure_logging()
