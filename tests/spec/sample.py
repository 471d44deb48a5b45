"""A small valid spec to derive test specs from, and a writer for spec files."""

from __future__ import annotations

from pathlib import Path

# Line numbers matter: the broken-spec corpus asserts positions in edits of this text.
VALID_SPEC = """\
version: 1
name: t
resource_group:
  name: rg
  location: eastus
storage:
  account:
    name: acct123
  file_shares:
    - name: share-one
      directories: [data]
workspace:
  name: ws
clusters:
  - name: c1
    vm_size: STANDARD_NC6
    scale:
      manual:
        target_node_count: 2
    user_account:
      {admin_user_name: demo, ssh_public_key: ssh-ed25519 AAAAtest}
    node_setup:
      mount_volumes:
        azure_file_shares:
          - share: share-one
            relative_mount_path: afs
experiments:
  - name: e1
    jobs:
      - name: j1
        cluster: c1
        node_count: 1
        input_directories:
          DATA: $AZ_BATCHAI_MOUNT_ROOT/afs/data
        output_directories:
          - id: OUT
            path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs
        std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/afs
        custom_toolkit:
          command_line: python $AZ_BATCHAI_INPUT_DATA/train.py --out $AZ_BATCHAI_OUTPUT_OUT
"""


def edited(old: str, new: str, text: str = VALID_SPEC) -> str:
    """The text with exactly one occurrence of `old` replaced (fails loudly when the edit does not apply)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def write_spec(directory: Path, text: str | bytes, name: str = "spec.yaml") -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# The top of a sweep spec, up to its experiments: one cluster writing to a blob container (tests/spec).
SWEEP_HEAD = """\
version: 1
name: sweep
resource_group: {name: rg, location: eastus}
workspace: {name: ws}
clusters:
  - {name: c1, vm_size: STANDARD_NC6, scale: {manual: {target_node_count: 1}}, user_account: {admin_user_name: demo, ssh_public_key: ssh-ed25519 AAAAtest}, node_setup: {mount_volumes: {azure_blob_file_systems: [{account_name: sweepblobs, container_name: runs, account_key: not-a-key, relative_mount_path: runs}]}}}
experiments:
"""
