"""The emulator's Azure Files held to the Azure SDK's own tests: the sync tests of the `azure-storage-file-share`
source distribution, run live against a fresh `batchai-spec emulator serve`.

    python conformance/azure_files.py [--version V] [-k EXPRESSION] [--show-failures N]

Downloads the pinned source distribution from PyPI at run time (into .conformance-cache/, never committed), runs
test_share.py, test_directory.py, test_file.py, test_get_file.py and test_file_service_properties.py with the
thinnest stand-in for the SDK's test framework (conformance/standin/devtools_testutils: live mode, the account from
the environment, the emulator's path-style account URL), against three storage accounts created through ARM, and
prints passed / failed / skipped with the reason of every skip and the first line of every failure. The version
defaults to the installed azure-storage-file-share (the tests must match the library they test).

Skipped because they cannot pass offline (the stand-in skips them, saying so): tests that need a Microsoft Entra
token credential, and tests of the blob service (the emulator serves Azure Files only). The SDK's own
`playback_test_only` tests are skipped as its live runs skip them. Nothing else is skipped by this runner.
Not part of the default test command: it takes minutes and needs the network once, for the download.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from batchai_spec.emulator.endpoint import Endpoint  # noqa: E402
from tests.emulator_clients import resource_client_for, storage_client_for  # noqa: E402

PACKAGE = "azure-storage-file-share"
TEST_FILES = ("test_share.py", "test_directory.py", "test_file.py", "test_get_file.py",
              "test_file_service_properties.py")
CACHE = REPOSITORY / ".conformance-cache"
STANDIN = Path(__file__).resolve().parent / "standin"
# The framework's keyword -> the account made for it (premium and secondary are ordinary accounts here).
ACCOUNTS = {"STORAGE_ACCOUNT": "conformance", "PREMIUM_STORAGE_FILE_ACCOUNT": "conformancepremium",
            "SECONDARY_STORAGE_ACCOUNT": "conformancesecond"}
RUN_TIMEOUT_S = 3600


def source_tests(version: str) -> Path:
    """The source distribution's tests/ directory, downloaded and unpacked once per version."""
    unpacked = CACHE / f"{PACKAGE}-{version}"
    if not (unpacked / "tests").is_dir():
        CACHE.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", f"{PACKAGE}=={version}", "--no-deps",
                        "--no-binary", ":all:", "-d", str(CACHE), "-q"], check=True)
        [archive] = CACHE.glob(f"{PACKAGE.replace('-', '_')}-{version}.tar.gz")
        with tarfile.open(archive) as bundle, tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            bundle.extractall(scratch, filter="data")
            (Path(scratch) / archive.name[: -len(".tar.gz")]).rename(unpacked)
    return unpacked / "tests"


def serve(state_dir: Path) -> tuple[subprocess.Popen, Endpoint]:
    emulator = subprocess.Popen([sys.executable, "-m", "batchai_spec", "emulator", "serve", "--state-dir",
                                 str(state_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, pause = time.monotonic() + 60, 0.05
    while not (state_dir / "endpoint.json").exists():
        if emulator.poll() is not None or time.monotonic() > deadline:
            emulator.kill()
            raise SystemExit(f"the emulator did not start (exit status {emulator.poll()})")
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    return emulator, Endpoint.read(state_dir / "endpoint.json")


def make_accounts(endpoint: Endpoint) -> dict[str, str]:
    """The accounts the tests use, created through ARM as a user creates them; their names and keys as the
    framework's variables."""
    resource_client_for(endpoint).resource_groups.create_or_update("conformance", {"location": "eastus"})
    storage = storage_client_for(endpoint)
    variables = {}
    for prefix, name in ACCOUNTS.items():
        storage.storage_accounts.begin_create(
            "conformance", name, {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}
        ).result()
        key = storage.storage_accounts.list_keys("conformance", name).keys[0].value
        variables.update({f"{prefix}_NAME": name, f"{prefix}_KEY": key})
    return variables


def run_tests(tests: Path, endpoint: Endpoint, accounts: dict[str, str], selection: str | None, report: Path) -> None:
    (tests / "pytest.ini").write_text("[pytest]\n")  # this suite's own configuration, none of the project's
    environment = {
        **os.environ, **accounts,
        "PYTHONPATH": os.pathsep.join([str(STANDIN), str(tests)]),
        "CONFORMANCE_FILE_ACCOUNT_URL": endpoint.file_endpoint("{account}"),
        "REQUESTS_CA_BUNDLE": endpoint.ca_cert,  # the tests' clients verify TLS with the default settings
        "AZURE_TEST_RUN_LIVE": "true",
    }
    command = [sys.executable, "-m", "pytest", *TEST_FILES, "-c", str(tests / "pytest.ini"), "-p",
               "conformance_plugin", "-p", "no:cacheprovider", "-q", "--no-header", "-rN",
               f"--junitxml={report}"]
    if selection:
        command += ["-k", selection]
    subprocess.run(command, cwd=tests, env=environment, timeout=RUN_TIMEOUT_S, check=False,
                   stdout=subprocess.DEVNULL)


def summarise(report: Path, show_failures: int) -> None:
    outcomes: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for case in ElementTree.parse(report).iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        found = next(iter(case), None)
        if found is None or found.tag in ("system-out", "system-err", "properties"):
            outcomes["passed"].append((name, ""))
        elif found.tag == "skipped":
            outcomes["skipped"].append((name, (found.get("message") or "").removeprefix("Skipped: ")))
        else:  # failure or error
            message = (found.get("message") or found.text or "").strip().splitlines()
            outcomes["failed"].append((name, message[0][:200] if message else ""))
    passed, failed, skipped = (len(outcomes[key]) for key in ("passed", "failed", "skipped"))
    offline = sum(1 for _, reason in outcomes["skipped"] if reason.startswith(("offline:", "playback only:")))
    total = passed + failed + skipped
    print(f"{total} tests: {passed} passed, {failed} failed, {skipped} skipped")
    print(f"passed: {passed / max(total - offline, 1):.1%} of the {total - offline} tests that can run offline"
          f" ({passed / max(total, 1):.1%} of all)")
    print("\nSkipped, by reason:")
    for reason, count in collections.Counter(reason for _, reason in outcomes["skipped"]).most_common():
        print(f"  {count:4d}  {reason}")
    print(f"\nFailed ({failed}):")
    for name, message in outcomes["failed"][:show_failures]:
        print(f"  {name}: {message}")
    if failed > show_failures:
        print(f"  ... {failed - show_failures} more (--show-failures N)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=importlib.metadata.version(PACKAGE))
    parser.add_argument("-k", dest="selection", help="pytest -k expression: a subset of the tests")
    parser.add_argument("--show-failures", type=int, default=1000)
    args = parser.parse_args()
    installed = importlib.metadata.version(PACKAGE)
    if args.version != installed:
        raise SystemExit(f"the tests of {PACKAGE} {args.version} test that version; {installed} is installed")
    tests = source_tests(args.version)
    with tempfile.TemporaryDirectory(prefix="conformance-") as scratch:
        emulator, endpoint = serve(Path(scratch) / "state")
        try:
            accounts = make_accounts(endpoint)
            run_tests(tests, endpoint, accounts, args.selection, Path(scratch) / "report.xml")
        finally:
            emulator.terminate()
            emulator.wait(timeout=60)
        print(f"{PACKAGE} {args.version}, {', '.join(TEST_FILES)} against the emulator's Azure Files")
        summarise(Path(scratch) / "report.xml", args.show_failures)


if __name__ == "__main__":
    main()
