"""A corpus of broken specs: each gives one SpecError starting with the exact `file:line:column` and its gist."""

from __future__ import annotations

import pytest

from batchai_spec.spec import SpecError, load_spec
from tests.spec.sample import VALID_SPEC, edited, write_spec

JOB_TAIL = "          command_line: python $AZ_BATCHAI_INPUT_DATA/train.py --out $AZ_BATCHAI_OUTPUT_OUT\n"
EXTRA_JOB = """\
      - name: J1
        cluster: c1
        node_count: 1
        std_out_err_path_prefix: x
        custom_toolkit: {command_line: x}
"""

# (id, broken text, "line:column", gist of the first message line)
CORPUS = [
    ("typo-cluster-key", edited("    vm_size:", "    vm_szie:"), "16:5", "unknown key 'vm_szie'; did you mean 'vm_size'?"),
    ("typo-top-level-key", edited("workspace:\n", "workspce:\n"), "12:1", "did you mean 'workspace'?"),
    ("unknown-key-no-match", edited("  location: eastus\n", "  location: eastus\n  zzz: 1\n"), "6:3", "unknown key 'zzz'; expected one of:"),
    ("wrong-type-int", edited("node_count: 1", "node_count: many"), "32:21", "valid integer"),
    ("missing-vm-size", edited("    vm_size: STANDARD_NC6\n", ""), "15:5", "clusters[0].vm_size: missing required key 'vm_size'"),
    ("missing-user-account", edited("    user_account:\n      {admin_user_name: demo, ssh_public_key: ssh-ed25519 AAAAtest}\n", ""), "15:5", "missing required key 'user_account'"),
    ("missing-workspace", edited("workspace:\n  name: ws\n", ""), "1:1", "missing required key 'workspace'"),
    ("two-toolkits", VALID_SPEC + "        pytorch:\n          python_script_file_path: x.py\n", "39:9", "exactly one toolkit; it has pytorch and custom_toolkit"),
    ("no-toolkit", edited("        custom_toolkit:\n" + JOB_TAIL, ""), "30:9", "a job needs exactly one toolkit key"),
    (
        "both-scales",
        edited("        target_node_count: 2\n", "        target_node_count: 2\n      auto: {minimum_node_count: 0, maximum_node_count: 2}\n"),
        "17:5",
        "give exactly one of `manual` or `auto`",
    ),
    ("no-scale", edited("    scale:\n      manual:\n        target_node_count: 2\n", "    scale: {}\n"), "17:5", "exactly one of `manual`"),
    ("bad-cluster-name", edited("  - name: c1", "  - name: c 1"), "15:11", "String should match pattern"),
    ("spec-name-too-long", edited("name: t\n", "name: " + "x" * 65 + "\n"), "2:7", "at most 64 characters"),
    ("bad-storage-account-name", edited("name: acct123", "name: Acct_123"), "8:11", "String should match pattern"),
    ("bad-share-name", edited("    - name: share-one", "    - name: share--one"), "10:13", "String should match pattern"),
    ("dangling-cluster", edited("cluster: c1", "cluster: c2"), "31:18", "cluster 'c2' is not declared in clusters; expected one of: c1"),
    ("dangling-share", edited("          - share: share-one", "          - share: share-onw"), "25:20", "'share-onw' is not declared in storage.file_shares; did you mean 'share-one'?"),
    ("dangling-input-id", edited("INPUT_DATA/train", "INPUT_DAT/train"), "40:25", "$AZ_BATCHAI_INPUT_DAT names no entry of input_directories; did you mean 'DATA'?"),
    ("dangling-output-id", edited("OUTPUT_OUT\n", "OUTPUT_MODEL\n"), "40:25", "$AZ_BATCHAI_OUTPUT_MODEL names no entry of output_directories"),
    (
        "dangling-id-in-stdout-prefix",
        edited("std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs", "std_out_err_path_prefix: ${AZ_BATCHAI_OUTPUT_LOGS}"),
        "38:34",
        "$AZ_BATCHAI_OUTPUT_LOGS names no entry",
    ),
    ("duplicate-experiment", VALID_SPEC + "  - name: E1\n", "41:11", "duplicate experiment name 'E1' (also at experiments[0].name)"),
    ("duplicate-job", VALID_SPEC + EXTRA_JOB, "41:15", "duplicate job name 'J1'"),
    (
        "duplicate-output-id",
        edited("        std_out_err_path_prefix", "          - id: out\n            path_prefix: x\n        std_out_err_path_prefix"),
        "38:17",
        "duplicate output directory id 'out'",
    ),
    ("duplicate-yaml-key", edited("  name: rg\n", "  name: rg\n  name: rg2\n"), "5:3", "duplicate key 'name' in the same mapping"),
    ("yaml-tab", edited("  name: ws", "\tname: ws"), "13:1", "YAML syntax error: while scanning for the next token, found character '\\t' that cannot start any token"),
    ("yaml-mapping-in-scalar", edited("name: t\n", "name: t: x\n"), "2:8", "YAML syntax error: mapping values are not allowed here"),
    ("several-documents", VALID_SPEC + "---\nversion: 1\n", "41:1", "expected a single document in the stream, but found another document"),
    ("top-level-list", "- a\n- b\n", "1:1", "(top level): a spec is a mapping of keys (version, name, resource_group, ...), not a list"),
    ("top-level-scalar", "just text\n", "1:1", "not a string"),
    ("empty", "", "1:1", "the document is empty"),
    ("only-comments", "# nothing here\n", "1:1", "the document is empty"),
    ("binary", b"version: 1\nname: \x00\x01\x02", "2:7", "a binary file, not a YAML text file"),
    ("not-utf8", b"version: 1\nname: caf\xe9\n", "2:10", "not UTF-8 text (byte 0xe9)"),
    ("undefined-var", edited("name: t\n", "name: {{ vars.spec_name }}\n"), "2:10", "`vars.spec_name` is undefined: pass --var spec_name=VALUE"),
    ("undefined-env", edited("name: t\n", "name: {{ env.BATCHAI_SPEC_TEST_UNSET }}\n"), "2:10", "the environment variable BATCHAI_SPEC_TEST_UNSET is not set"),
    ("undefined-name", edited("name: t\n", "name: {{ spec_name }}\n"), "2:10", "`spec_name` is undefined (the template knows env, vars and spec_dir)"),
    ("template-syntax", edited("name: t\n", "name: {{ vars.x | }}\n"), "2:1", "template syntax error"),
    ("template-sandbox", edited("name: t\n", "name: {{ ''.__class__ }}\n"), "2:7", "refused by the sandbox"),
    ("template-runtime-error", edited("name: t\n", "name: {{ 1 // 0 }}\n"), "2:7", "ZeroDivisionError"),
    ("wrong-version", edited("version: 1", "version: 2"), "1:10", "Input should be 1"),
    ("bad-enum", edited("    vm_size: STANDARD_NC6\n", "    vm_size: STANDARD_NC6\n    vm_priority: cheap\n"), "17:18", "'dedicated' or 'lowpriority'"),
    ("too-many-nodes", edited("target_node_count: 2", "target_node_count: 101"), "19:28", "less than or equal to 100"),
    ("zero-job-nodes", edited("node_count: 1", "node_count: 0"), "32:21", "greater than or equal to 1"),
    ("job-bigger-than-cluster", edited("node_count: 1", "node_count: 3"), "32:21", "the job needs 3 nodes; cluster 'c1' scales to at most 2"),
    (
        "auto-min-over-max",
        edited("      manual:\n        target_node_count: 2\n", "      auto:\n        minimum_node_count: 3\n        maximum_node_count: 2\n"),
        "19:29",
        "minimum_node_count exceeds maximum_node_count",
    ),
    ("file-mode-not-string", edited("relative_mount_path: afs\n", "relative_mount_path: afs\n            file_mode: 777\n"), "27:24", "valid string"),
    ("external-share-incomplete", edited("          - share: share-one", "          - account_name: other"), "25:13", "missing: azure_file_url, account_key"),
    (
        "share-and-external",
        edited("relative_mount_path: afs\n", "relative_mount_path: afs\n            account_name: other\n"),
        "27:27",
        "give either `share` (a share of this spec) or an external share's keys, not both",
    ),
    ("bad-env-name", edited("node_count: 1\n", "node_count: 1\n        environment_variables: {1BAD: x}\n"), "33:33", "String should match pattern"),
    (
        "env-and-secret",
        edited("node_count: 1\n", "node_count: 1\n        environment_variables: {A: x}\n        secrets: {A: y}\n"),
        "34:19",
        "'A' is both an environment variable and a secret",
    ),
    ("wall-clock-over-7-days", edited("node_count: 1\n", "node_count: 1\n        constraints: {max_wall_clock_time: P8D}\n"), "33:44", "less than or equal to 7 days"),
    ("wall-clock-not-duration", edited("node_count: 1\n", "node_count: 1\n        constraints: {max_wall_clock_time: soon}\n"), "33:44", "expected a duration: ISO 8601 (P7D, PT1H30M), [D.]HH:MM:SS or seconds"),
    (
        "cntk-brainscript-with-script",
        edited("        custom_toolkit:\n" + JOB_TAIL, "        cntk:\n          language_type: BrainScript\n          python_script_file_path: x.py\n"),
        "41:36",
        "python_script_file_path is for language_type Python",
    ),
    ("typo-toolkit", edited("        custom_toolkit:", "        custom_tolkit:"), "39:9", "did you mean 'custom_toolkit'?"),
    ("refused-vm-size", edited("vm_size: STANDARD_NC6", "vm_size: STANDARD_A0"), "16:14", "Batch AI cannot use VM size STANDARD_A0"),
    (
        "glob-to-file-destination",
        edited("      directories: [data]\n", "      directories: [data]\n      uploads:\n        - source: data/*.txt\n          destination: data/f.txt\n"),
        "14:24",
        'a glob source needs a directory destination ending in "/"',
    ),
    ("dot-dot-directory", edited("directories: [data]", "directories: [../data]"), "11:21", "may not contain '.' or '..' segments"),
    ("resource-group-trailing-dot", edited("  name: rg\n", "  name: rg.\n"), "4:9", "String should match pattern"),
    ("quota-too-large", edited("      directories: [data]\n", "      directories: [data]\n      quota_gb: 6000\n"), "12:17", "less than or equal to 5120"),
    ("tags-not-mapping", edited("  location: eastus\n", "  location: eastus\n  tags: [a]\n"), "6:3", "resource_group.tags: expected a mapping"),
    ("workspace-scalar", edited("workspace:\n  name: ws\n", "workspace: ws\n"), "12:12", "workspace: expected a mapping"),
    ("clusters-not-list", edited("experiments:\n", "experiments: 3\nx:\n"), "27:14", "experiments: expected a list"),
    (
        "registry-without-username",
        edited("node_count: 1\n", "node_count: 1\n        container: {image: x/y, registry: {server_url: r.io}}\n"),
        "33:33",
        "registry.username: missing required key 'username'",
    ),
    ("bad-shm-size", edited("node_count: 1\n", "node_count: 1\n        container: {image: x, shm_size: lots}\n"), "33:41", "String should match pattern"),
    ("relative-mount-absolute", edited("relative_mount_path: afs", "relative_mount_path: /afs"), "26:34", "String should match pattern"),
]


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 40
    assert len({case_id for case_id, *_ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("text", "location", "gist"), [case[1:] for case in CORPUS], ids=[case[0] for case in CORPUS])
def test_broken_spec_gives_one_located_message(tmp_path, monkeypatch, text, location, gist):
    monkeypatch.delenv("BATCHAI_SPEC_TEST_UNSET", raising=False)
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    first_line = raised.value.message.splitlines()[0]
    assert first_line.startswith(f"{path}:{location}: "), first_line
    assert gist in first_line
    assert raised.value.exit_code == 1
