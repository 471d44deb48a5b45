"""`devtools_testutils.storage` as the file share tests use it (see the package's docstring)."""

from devtools_testutils.storage.testcase import LogCaptured, StorageRecordedTestCase  # noqa: F401
