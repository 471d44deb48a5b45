"""Property: any valid spec, written out as YAML and loaded again, is the same spec (secrets included)."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, TypeAdapter

from batchai_spec.spec import Spec, load_spec

# Not a DOS device name (aux, con, nul, prn, com1, lpt1, ...), which Azure Files refuses as a file or directory name.
NAMES = st.from_regex(r"[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,3})?", fullmatch=True).filter(
    lambda name: name not in {"aux", "con", "nul", "prn"} and not (name[:3] in ("com", "lpt") and name[3:].isdigit())
)
IDS = st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True)
# Free text without template syntax ({ % #) nor `$` (which would reference job directories).
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="{}%#$"), min_size=1, max_size=12)
SECRETS = st.dictionaries(IDS.map(lambda name: "S_" + name), TEXT.map(SecretStr), max_size=2)
DURATIONS = st.integers(1, 7 * 24 * 3600).map(lambda seconds: timedelta(seconds=seconds))


def reveal(value: Any) -> Any:
    """A YAML-ready dump with secret values in clear: the explicit, test-only way to write secrets out."""
    if isinstance(value, BaseModel):
        return {name: reveal(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, timedelta):
        return TypeAdapter(timedelta).dump_python(value, mode="json")
    if isinstance(value, dict):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [reveal(item) for item in value]
    return value


@st.composite
def specs(draw) -> Spec:
    shares = draw(st.lists(NAMES.map(lambda name: "share-" + name), max_size=2, unique=True))
    storage = {
        "account": {"name": draw(st.from_regex(r"[a-z0-9]{3,24}", fullmatch=True)), "existing": draw(st.booleans())},
        "file_shares": [
            {
                "name": share,
                "quota_gb": draw(st.integers(1, 5120)),
                "directories": draw(
                    st.lists(
                        st.from_regex(r"[a-z]{1,4}(/[a-z]{1,4})?", fullmatch=True).filter(
                            lambda path: not {"aux", "con", "nul", "prn"} & set(path.split("/"))
                        ),
                        max_size=2,
                    )
                ),
                "uploads": [
                    {"source": f"data/{name}.txt", "destination": f"in/{name}.txt", "produced_by": draw(st.none() | TEXT)}
                    for name in draw(st.lists(NAMES, max_size=2, unique=True))
                ],
            }
            for share in shares
        ],
    }
    cluster_names = draw(st.lists(NAMES, min_size=1, max_size=2, unique=True))
    clusters = [
        {
            "name": name,
            "vm_size": draw(st.sampled_from(["STANDARD_NC6", "Standard_D1", "STANDARD_NV24"])),
            "vm_priority": draw(st.sampled_from(["dedicated", "lowpriority"])),
            "scale": draw(
                st.sampled_from(
                    [{"manual": {"target_node_count": 2, "node_deallocation_option": "terminate"}},
                     {"auto": {"minimum_node_count": 0, "maximum_node_count": 3, "initial_node_count": 1}}]
                )
            ),
            "user_account": {"admin_user_name": "demo", "ssh_public_key": "ssh-ed25519 AAAAtest", "admin_user_password": draw(st.none() | TEXT.map(SecretStr))},
            "node_setup": {
                "setup_task": {"command_line": draw(TEXT), "secrets": draw(SECRETS), "std_out_err_path_prefix": "$AZ_BATCHAI_MOUNT_ROOT/scratch/logs"},
                "mount_volumes": {
                    "azure_file_shares": [{"share": share, "relative_mount_path": f"m{index}"} for index, share in enumerate(shares)],
                    "azure_blob_file_systems": [
                        # Job output goes here: Batch AI writes it only to a mounted share or blob container.
                        {"account_name": "blobacct", "container_name": "scratch", "account_key": draw(TEXT.map(SecretStr)), "relative_mount_path": "scratch"},
                        *draw(
                            st.lists(
                                st.builds(
                                    lambda key: {"account_name": "blobacct", "container_name": "box", "account_key": key, "relative_mount_path": "blob"},
                                    TEXT.map(SecretStr),
                                ),
                                max_size=1,
                            )
                        ),
                    ],
                },
            },
        }
        for name in cluster_names
    ]
    toolkits = st.sampled_from(
        [
            {"custom_toolkit": {"command_line": "python $AZ_BATCHAI_INPUT_IN/t.py $AZ_BATCHAI_OUTPUT_OUT"}},
            {"cntk": {"python_script_file_path": "$AZ_BATCHAI_INPUT_IN/c.py", "process_count": 1}},
            {"pytorch": {"python_script_file_path": "p.py", "communication_backend": "Gloo"}},
            {"tensorflow": {"python_script_file_path": "t.py", "worker_count": 2, "parameter_server_count": 1}},
            {"custom_mpi": {"command_line": "x", "process_count": 2}},
        ]
    )
    experiments = [
        {
            "name": experiment,
            "jobs": [
                {
                    "name": job,
                    "cluster": draw(st.sampled_from(cluster_names)),
                    "node_count": 1,
                    "scheduling_priority": draw(st.sampled_from(["low", "normal", "high"])),
                    "container": draw(st.none() | st.builds(lambda password: {"image": "r.io/i:1", "registry": {"server_url": "r.io", "username": "u", "password": password}}, TEXT.map(SecretStr))),
                    "input_directories": {"IN": "/in"},
                    "output_directories": [{"id": "OUT", "path_prefix": "$AZ_BATCHAI_MOUNT_ROOT/scratch/out", "path_suffix": draw(st.none() | NAMES)}],
                    "std_out_err_path_prefix": "${AZ_BATCHAI_MOUNT_ROOT}/scratch",
                    "environment_variables": draw(st.dictionaries(IDS.map(lambda name: "E_" + name), TEXT, max_size=2)),
                    "secrets": draw(SECRETS),
                    "constraints": {"max_wall_clock_time": draw(DURATIONS)},
                    **draw(toolkits),
                }
                for job in draw(st.lists(NAMES, max_size=2, unique=True))
            ],
        }
        for experiment in draw(st.lists(NAMES, max_size=2, unique=True))
    ]
    return Spec.model_validate(
        {
            "version": 1,
            "name": draw(NAMES),
            "resource_group": {"name": draw(NAMES), "location": "eastus", "tags": draw(st.dictionaries(NAMES, TEXT, max_size=2)), "delete_on_destroy": draw(st.booleans())},
            "storage": storage if shares or draw(st.booleans()) else None,
            "workspace": {"name": draw(NAMES), "location": draw(st.none() | st.just("westeurope"))},
            "clusters": clusters,
            "experiments": experiments,
        }
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_a_dumped_spec_loads_back_equal(spec):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "spec.yaml"
        path.write_text(yaml.safe_dump(reveal(spec), sort_keys=False, allow_unicode=True), encoding="utf-8")
        assert load_spec(path).spec == spec
