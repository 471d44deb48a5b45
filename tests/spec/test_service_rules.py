"""`validate` refuses what Batch AI or Azure Files would refuse at apply time, each as one located message, exit 1.

Job logs and output directories must be on an Azure File share or blob container that the job's cluster or the job
mounts; names in a share follow Azure Files' rules (no control character, none of " \\ : | < > * ?, at most 255
characters, no trailing dot or space, no device name, paths up to 2048 characters, names compared without case).
Every case goes through the command line, as a user meets it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.running import run_main
from tests.spec.sample import VALID_SPEC, edited

STDOUT_PREFIX = "std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs"
OUTPUT_PREFIX = "            path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs\n"
MOUNTS = "          - share: share-one\n            relative_mount_path: afs\n"
NODE_SETUP = "    node_setup:\n      mount_volumes:\n        azure_file_shares:\n" + MOUNTS
FILE_SERVER_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/fileServers/nfs1"
STDOUT_KEY = "experiments[0].jobs[0].std_out_err_path_prefix"
OUTPUT_KEY = "experiments[0].jobs[0].output_directories[0]"
ALLOWED = "start it with $AZ_BATCHAI_MOUNT_ROOT/afs (Azure File share share-one, mounted by cluster c1), optionally followed by /SUB/PATH"
AZURE_FILES_CHARACTERS = """Azure Files refuses names holding any of " \\ : | < > * ?"""


def stdout_prefix(value: str) -> str:
    return edited(STDOUT_PREFIX, f"std_out_err_path_prefix: {value}")


def output_prefix(value: str, suffix: str | None = None) -> str:
    return edited(OUTPUT_PREFIX, f"            path_prefix: {value}\n" + (f"            path_suffix: {suffix}\n" if suffix is not None else ""))


def extra_mounts(text: str) -> str:
    return edited(MOUNTS, MOUNTS + text)


def directories(flow: str) -> str:
    return edited("directories: [data]", f"directories: {flow}")


def uploads(lines: str) -> str:
    return edited("      directories: [data]\n", "      directories: [data]\n      uploads:\n" + lines)


def setup_task(prefix: str) -> str:
    return extra_mounts(f"      setup_task: {{command_line: echo ready, std_out_err_path_prefix: {prefix}}}\n")


LONG = "x" * 256
DEEP = "/".join(["d" * 250] * 5)  # with a 900-character destination: more than Azure Files' 2048-character paths

# (id, spec text, local files to create, "line:column", key path, gists of the message)
CASES = [
    # Job logs and outputs: on an Azure File share or blob container mounted by the job's cluster or the job.
    ("stdout-in-job-temp", stdout_prefix("$AZ_BATCHAI_JOB_TEMP"), {}, "38:34", STDOUT_KEY,
     ["'$AZ_BATCHAI_JOB_TEMP' is not on mounted storage; Batch AI writes a job's stdout and stderr only to an Azure File share or blob container mounted for it", ALLOWED]),
    ("stdout-local-path", stdout_prefix("/tmp/logs"), {}, "38:34", STDOUT_KEY, ["'/tmp/logs' is not on mounted storage", ALLOWED]),
    ("stdout-mount-root-itself", stdout_prefix("$AZ_BATCHAI_MOUNT_ROOT"), {}, "38:34", STDOUT_KEY, ["is not on mounted storage", ALLOWED]),
    ("stdout-lookalike-variable", stdout_prefix("$AZ_BATCHAI_MOUNT_ROOTS/afs"), {}, "38:34", STDOUT_KEY, ["is not on mounted storage"]),
    ("stdout-unknown-mount", stdout_prefix("$AZ_BATCHAI_MOUNT_ROOT/afz/logs"), {}, "38:34", STDOUT_KEY,
     ["$AZ_BATCHAI_MOUNT_ROOT/afz is not a volume mounted by cluster c1 (did you mean $AZ_BATCHAI_MOUNT_ROOT/afs?); " + ALLOWED]),
    ("stdout-mount-path-case", stdout_prefix("${AZ_BATCHAI_MOUNT_ROOT}/AFS"), {}, "38:34", STDOUT_KEY,
     ["$AZ_BATCHAI_MOUNT_ROOT/AFS is not a volume mounted by cluster c1; " + ALLOWED]),
    ("stdout-job-mount-root-without-job-mounts", stdout_prefix("$AZ_BATCHAI_JOB_MOUNT_ROOT/afs"), {}, "38:34", STDOUT_KEY,
     ["$AZ_BATCHAI_JOB_MOUNT_ROOT/afs is not a volume mounted by the job; " + ALLOWED]),
    (
        "stdout-on-file-server",
        stdout_prefix("$AZ_BATCHAI_MOUNT_ROOT/nfs/logs").replace(
            MOUNTS, MOUNTS + f"        file_servers:\n          - {{file_server_id: {FILE_SERVER_ID}, relative_mount_path: nfs}}\n"
        ),
        {},
        "40:34",
        STDOUT_KEY,
        ["$AZ_BATCHAI_MOUNT_ROOT/nfs is a file server nfs1; Batch AI lists job output files only from Azure File shares and blob containers"],
    ),
    (
        "stdout-on-unmanaged-file-system",
        stdout_prefix("$AZ_BATCHAI_MOUNT_ROOT/gluster").replace(
            MOUNTS, MOUNTS + "        unmanaged_file_systems:\n          - {mount_command: mount -t glusterfs g:/v, relative_mount_path: gluster}\n"
        ),
        {},
        "40:34",
        STDOUT_KEY,
        ["$AZ_BATCHAI_MOUNT_ROOT/gluster is an unmanaged file system; Batch AI lists job output files only from"],
    ),
    ("stdout-escapes-its-mount", stdout_prefix("$AZ_BATCHAI_MOUNT_ROOT/afs/../../etc"), {}, "38:34", STDOUT_KEY,
     ["the path below $AZ_BATCHAI_MOUNT_ROOT/afs: a path may not contain '.' or '..' segments"]),
    ("stdout-name-azure-files-refuses", stdout_prefix("$AZ_BATCHAI_MOUNT_ROOT/afs/logs:today"), {}, "38:34", STDOUT_KEY,
     ["the path below $AZ_BATCHAI_MOUNT_ROOT/afs: the name 'logs:today' holds ':'; " + AZURE_FILES_CHARACTERS]),
    (
        "nothing-mounted",
        edited(NODE_SETUP, ""),
        {},
        "33:34",
        STDOUT_KEY,
        ["none is mounted: mount an Azure File share or blob container in clusters[0].node_setup.mount_volumes (then "
         "$AZ_BATCHAI_MOUNT_ROOT/<its relative_mount_path>) or in the job's mount_volumes ($AZ_BATCHAI_JOB_MOUNT_ROOT/...)"],
    ),
    ("output-prefix-local", output_prefix("/mnt/out"), {}, "37:26", OUTPUT_KEY + ".path_prefix",
     ["'/mnt/out' is not on mounted storage; Batch AI writes a job's output directories only to an Azure File share or blob container", ALLOWED]),
    ("output-prefix-in-shared-job-temp", output_prefix("$AZ_BATCHAI_SHARED_JOB_TEMP"), {}, "37:26", OUTPUT_KEY + ".path_prefix", ["is not on mounted storage"]),
    ("output-prefix-empty-name", output_prefix("$AZ_BATCHAI_MOUNT_ROOT/afs//models"), {}, "37:26", OUTPUT_KEY + ".path_prefix",
     ["the path below $AZ_BATCHAI_MOUNT_ROOT/afs: the path has an empty name (a doubled '/')"]),
    ("output-suffix-absolute", output_prefix("$AZ_BATCHAI_MOUNT_ROOT/afs", "/etc"), {}, "38:26", OUTPUT_KEY + ".path_suffix",
     ["expected a relative path (no leading '/')"]),
    ("output-suffix-dot-dot", output_prefix("$AZ_BATCHAI_MOUNT_ROOT/afs", "models/../../.."), {}, "38:26", OUTPUT_KEY + ".path_suffix",
     ["a path may not contain '.' or '..' segments"]),
    ("output-suffix-reserved-name", output_prefix("$AZ_BATCHAI_MOUNT_ROOT/afs", "aux"), {}, "38:26", OUTPUT_KEY + ".path_suffix",
     ["'aux' is a reserved device name, which Azure Files refuses"]),
    ("output-id-stdouterr", edited("- id: OUT", "- id: STDOUTERR").replace("OUTPUT_OUT", "OUTPUT_STDOUTERR"), {}, "36:17", OUTPUT_KEY + ".id",
     ["the output directory id 'STDOUTERR' is reserved for the job's stdout and stderr"]),
    ("input-ids-differ-in-case", edited("          DATA: $AZ_BATCHAI_MOUNT_ROOT/afs/data\n", "          DATA: $AZ_BATCHAI_MOUNT_ROOT/afs/data\n          Data: /data\n"),
     {}, "35:11", "experiments[0].jobs[0].input_directories.Data", ["duplicate input directory id 'Data' (also 'DATA'; ids ignore case)"]),
    # A setup task's output: on a volume the cluster mounts.
    ("setup-task-output-local", setup_task("/var/log/setup"), {}, "27:71", "clusters[0].node_setup.setup_task.std_out_err_path_prefix",
     ["'/var/log/setup' is not on mounted storage; Batch AI writes the setup task's output only to a volume mounted for it", ALLOWED]),
    ("setup-task-output-job-mount-root", setup_task("$AZ_BATCHAI_JOB_MOUNT_ROOT/afs"), {}, "27:71", "clusters[0].node_setup.setup_task.std_out_err_path_prefix",
     ["'$AZ_BATCHAI_JOB_MOUNT_ROOT/afs' is not on mounted storage"]),
    ("setup-task-output-unknown-mount", setup_task("$AZ_BATCHAI_MOUNT_ROOT/logs"), {}, "27:71", "clusters[0].node_setup.setup_task.std_out_err_path_prefix",
     ["$AZ_BATCHAI_MOUNT_ROOT/logs is not a volume mounted by cluster c1"]),
    # Directory names in a share.
    ("directory-nul", directories('["da\\0ta"]'), {}, "11:21", "storage.file_shares[0].directories[0]",
     ["the name 'da\\x00ta' holds the control character \\x00; names may hold no control character"]),
    ("directory-tab", directories('["a\\tb"]'), {}, "11:21", "storage.file_shares[0].directories[0]", ["holds the control character \\t"]),
    ("directory-name-over-255", directories(f"[data/{LONG}]"), {}, "11:21", "storage.file_shares[0].directories[0]",
     ["is 256 characters long; Azure Files allows at most 255"]),
    ("directory-name-over-255-bytes", directories(f"[{'é' * 128}]"), {}, "11:21", "storage.file_shares[0].directories[0]",
     ["is 256 bytes long in UTF-8; at most 255 (the local emulator keeps names as file names)"]),
    ("directory-trailing-dot", directories("[data.]"), {}, "11:21", "storage.file_shares[0].directories[0]",
     ["the name 'data.' ends with a dot; Azure Files refuses names ending in a dot or a space"]),
    ("directory-trailing-space", directories('["data/x "]'), {}, "11:21", "storage.file_shares[0].directories[0]", ["the name 'x ' ends with a space"]),
    ("directory-device-name", directories("[data/nul]"), {}, "11:21", "storage.file_shares[0].directories[0]",
     ["'nul' is a reserved device name, which Azure Files refuses (CON, PRN, AUX, NUL, CLOCK$, COM1-COM9, LPT1-LPT9)"]),
    ("directories-differ-in-case", directories("[data, Data/x]"), {}, "11:27", "storage.file_shares[0].directories[1]",
     ["'Data' and 'data' (at directories[0]) differ only in case; Azure Files names are case-insensitive"]),
    # Upload destinations.
    ("destination-nul", uploads('        - {source: data/a.txt, destination: "in/a\\0.txt"}\n'), {"data/a.txt": "a"}, "13:45",
     "storage.file_shares[0].uploads[0].destination", ["the name 'a\\x00.txt' holds the control character \\x00"]),
    ("destination-name-over-255", uploads(f"        - {{source: data/a.txt, destination: in/{LONG}}}\n"), {"data/a.txt": "a"}, "13:45",
     "storage.file_shares[0].uploads[0].destination", ["is 256 characters long; Azure Files allows at most 255"]),
    ("destination-colon", uploads("        - {source: data/a.txt, destination: 'in/a:b.txt'}\n"), {"data/a.txt": "a"}, "13:45",
     "storage.file_shares[0].uploads[0].destination", ["the name 'a:b.txt' holds ':'; " + AZURE_FILES_CHARACTERS]),
    ("destination-question-mark", uploads("        - {source: data/a.txt, destination: 'in/why?/'}\n"), {"data/a.txt": "a"}, "13:45",
     "storage.file_shares[0].uploads[0].destination", ["holds '?'"]),
    ("destination-device-name", uploads("        - {source: data/a.txt, destination: in/LPT1}\n"), {"data/a.txt": "a"}, "13:45",
     "storage.file_shares[0].uploads[0].destination", ["'LPT1' is a reserved device name"]),
    ("destination-is-a-declared-directory", uploads("        - {source: data/a.txt, destination: data}\n"), {"data/a.txt": "a"}, "13:45",
     "storage.file_shares[0].uploads[0].destination", ["'data' is a file here and a directory at directories[0]; a share cannot hold both"]),
    (
        "destination-file-and-directory",
        uploads("        - {source: data/a.txt, destination: in/model}\n        - {source: data/a.txt, destination: in/model/}\n"),
        {"data/a.txt": "a"},
        "14:45",
        "storage.file_shares[0].uploads[1].destination",
        ["'in/model' is a directory here and a file at uploads[0].destination; a share cannot hold both"],
    ),
    # Files a glob finds, named as Azure Files will not have them.
    ("glob-finds-a-refused-name", uploads("        - {source: 'data/*', destination: in/}\n"), {"data/ok.txt": "a", "data/we:ird.txt": "b"}, "13:20",
     "storage.file_shares[0].uploads[0].source", ["'data/we:ird.txt' would be uploaded as 'in/we:ird.txt': the name 'we:ird.txt' holds ':'"]),
    ("glob-finds-a-trailing-dot", uploads("        - {source: 'data/*', destination: in/}\n"), {"data/readme.": "a"}, "13:20",
     "storage.file_shares[0].uploads[0].source", ["would be uploaded as 'in/readme.': the name 'readme.' ends with a dot"]),
    (
        "glob-path-over-2048",
        uploads(f"        - {{source: 'data/**/*', destination: {'p' * 200}/{'q' * 200}/{'r' * 200}/{'s' * 200}/{'t' * 96}/}}\n"),
        {f"data/{DEEP}/f.txt": "a"},
        "13:20",
        "storage.file_shares[0].uploads[0].source",
        ["characters long; Azure Files allows at most 2048"],
    ),
    (
        "glob-file-where-a-directory-is",
        uploads("        - {source: 'data/*', destination: in/}\n        - {source: elsewhere/x.txt, destination: in/m/x.txt}\n"),
        {"data/m": "a file named m", "elsewhere/x.txt": "b"},
        "14:50",
        "storage.file_shares[0].uploads[1].destination",
        ["'in/m' is a directory here and a file at storage.file_shares[0].uploads[0].destination"],
    ),
    # Mounts.
    ("relative-mount-path-nested", edited("relative_mount_path: afs", "relative_mount_path: mnt/afs").replace("ROOT/afs", "ROOT/mnt/afs"), {}, "26:34",
     "clusters[0].node_setup.mount_volumes.azure_file_shares[0].relative_mount_path",
     ["expected a single directory name, without '/': Batch AI mounts each volume at $AZ_BATCHAI_MOUNT_ROOT/NAME"]),
    ("relative-mount-path-nul", edited("relative_mount_path: afs", 'relative_mount_path: "a\\0fs"'), {}, "26:34",
     "clusters[0].node_setup.mount_volumes.azure_file_shares[0].relative_mount_path", ["holds the control character \\x00"]),
    (
        "external-share-url-of-another-account",
        edited("          - share: share-one\n", "          - account_name: other\n            azure_file_url: https://someone.file.core.windows.net/share\n            account_key: k\n"),
        {},
        "26:29",
        "clusters[0].node_setup.mount_volumes.azure_file_shares[0].azure_file_url",
        ["expected https://other.file.core.windows.net/SHARE: the file endpoint of account_name 'other'"],
    ),
    # Clusters.
    ("empty-ssh-key-and-no-password", edited("ssh_public_key: ssh-ed25519 AAAAtest", "ssh_public_key: ''"), {}, "20:5", "clusters[0].user_account",
     ["give ssh_public_key or admin_user_password (or both), not empty"]),
    ("basic-a0", edited("vm_size: STANDARD_NC6", "vm_size: Basic_A0"), {}, "16:14", "clusters[0].vm_size", ["Batch AI cannot use VM size Basic_A0"]),
]

# Allowed: what the service accepts must keep validating.
VALID = [
    ("braces-and-trailing-slash", stdout_prefix("${AZ_BATCHAI_MOUNT_ROOT}/afs/logs/")),
    ("input-directories-may-be-local", edited("DATA: $AZ_BATCHAI_MOUNT_ROOT/afs/data", "DATA: /mnt/local/data")),
    ("input-directories-may-name-any-mount", edited("DATA: $AZ_BATCHAI_MOUNT_ROOT/afs/data", "DATA: $AZ_BATCHAI_MOUNT_ROOT/other/data")),
    (
        "job-level-blob-container",
        edited(
            "        " + STDOUT_PREFIX,
            "        mount_volumes:\n          azure_blob_file_systems:\n"
            "            - {account_name: blobacct, container_name: logs, account_key: k, relative_mount_path: logs}\n"
            "        std_out_err_path_prefix: $AZ_BATCHAI_JOB_MOUNT_ROOT/logs/run-1",
        ),
    ),
    ("setup-task-output-on-a-share", setup_task("$AZ_BATCHAI_MOUNT_ROOT/afs/setup")),
    (
        "setup-task-output-on-a-file-server",
        extra_mounts(
            f"        file_servers:\n          - {{file_server_id: {FILE_SERVER_ID}, relative_mount_path: nfs}}\n"
            "      setup_task: {command_line: echo ready, std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/nfs}\n"
        ),
    ),
    ("names-with-spaces-dots-and-unicode", directories("['my data/v1.2/données', .hidden/x, console, COM10]")),
    ("external-share-url-any-case", edited("          - share: share-one\n", "          - account_name: other\n            azure_file_url: https://Other.file.core.windows.net/share/\n            account_key: k\n")),
]


def run_validate(monkeypatch, capsys, directory: Path, text: str, files: dict[str, str]) -> tuple[int, str, str]:
    """`batchai-spec validate spec.yaml` in `directory` (a project: pyproject.toml, the files): (code, stdout, stderr)."""
    (directory / "pyproject.toml").write_text("")
    for relative, content in files.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(content)
    (directory / "spec.yaml").write_text(text, encoding="utf-8")
    monkeypatch.chdir(directory)
    return run_main(monkeypatch, capsys, "validate", "spec.yaml")


def test_the_cases_are_distinct():
    assert len({case_id for case_id, *_ in CASES}) == len(CASES)
    assert len({case_id for case_id, _ in VALID}) == len(VALID)


@pytest.mark.parametrize(("text", "files", "location", "key", "gists"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_what_the_service_refuses_is_one_located_error(monkeypatch, capsys, tmp_path, text, files, location, key, gists):
    code, out, err = run_validate(monkeypatch, capsys, tmp_path, text, files)
    assert (code, out) == (1, ""), err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"Error: spec.yaml:{location}: {key}: "), err
    for gist in gists:
        assert gist in err


@pytest.mark.parametrize("text", [text for _, text in VALID], ids=[case_id for case_id, _ in VALID])
def test_what_the_service_accepts_still_validates(monkeypatch, capsys, tmp_path, text):
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, text, {})
    assert code == 0, err


def test_the_quickstarts_stdout_in_job_temp_is_refused_by_the_console_script(tmp_path):
    """The reported case: it used to validate, then fail at apply with `GET of an output file failed: MissingSchema`."""
    text = Path("specs/mnist-cntk.yaml").read_text(encoding="utf-8")
    text = text.replace("std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/azurefileshare", "std_out_err_path_prefix: $AZ_BATCHAI_JOB_TEMP")
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "mnist-cntk.yaml"
    spec.write_text(text, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "batchai_spec", "validate", str(spec)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"Error: {spec}:63:34: experiments[0].jobs[0].std_out_err_path_prefix: '$AZ_BATCHAI_JOB_TEMP' is not on mounted "
        "storage; Batch AI writes a job's stdout and stderr only to an Azure File share or blob container mounted for it: "
        "start it with $AZ_BATCHAI_MOUNT_ROOT/azurefileshare (Azure File share batchaiquickstart, mounted by cluster "
        "mycluster), optionally followed by /SUB/PATH\n"
    )


def test_long_paths_cost_what_they_look_like(monkeypatch, capsys, tmp_path):
    """100,000 characters of names below a mount, or in a share's directory list: one pass each, one message."""
    text = stdout_prefix("$AZ_BATCHAI_MOUNT_ROOT/afs/" + "a/" * 50_000 + "b")
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, text, {})
    assert code == 1 and "the path below $AZ_BATCHAI_MOUNT_ROOT/afs: the path is 100001 characters long; Azure Files allows at most 2048" in err
    text = directories("[" + ", ".join(["a/" * 500 + f"d{index}" for index in range(100)]) + ", A]")
    code, _, err = run_validate(monkeypatch, capsys, tmp_path, text, {})
    assert code == 1 and "'A' and 'a' (at directories[0]) differ only in case" in err
