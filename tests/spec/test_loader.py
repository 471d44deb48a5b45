"""Loading: templating context and precedence, sweeps, positions, and the shapes YAML can take."""

from __future__ import annotations

import pytest

from batchai_spec.spec import SpecError, load_spec, read_var_file
from tests.spec.sample import SWEEP_HEAD, VALID_SPEC, edited, write_spec

REPO_SPEC = "specs/mnist-cntk.yaml"

SWEEP = SWEEP_HEAD + """\
  - name: e1
    jobs:
{% for lr in vars.rates | default([0.1, 0.01]) %}
      - name: lr-{{ loop.index }}
        cluster: c1
        node_count: {{ vars.nodes if loop.index == 2 else 1 }}
        std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/runs
        custom_toolkit: {command_line: "python train.py --lr {{ lr }}"}
{% endfor %}
"""


def test_the_sample_spec_loads_with_its_defaults():
    loaded = load_spec(REPO_SPEC)
    job = loaded.spec.experiments[0].jobs[0]
    assert loaded.spec.storage.account.name == "mnistcntkstore"
    assert job.toolkit[0] == "cntk"
    assert job.toolkit[1].command_line_args == "$AZ_BATCHAI_INPUT_SAMPLE $AZ_BATCHAI_OUTPUT_MODEL --epochs 40"
    assert loaded.spec_dir.name == "specs" and loaded.spec_dir.is_absolute()
    assert loaded.location(("experiments", 0, "jobs", 0)) == f"{REPO_SPEC}:52:9"
    assert loaded.location(("clusters", 0, "vm_size")) == f"{REPO_SPEC}:35:14"


def test_plan_time_errors_point_at_the_key():
    loaded = load_spec(REPO_SPEC)
    error = loaded.error(("clusters", 0, "vm_size"), "no such VM size in eastus")
    assert error.message == f"{REPO_SPEC}:35:14: clusters[0].vm_size: no such VM size in eastus"


def test_vars_from_files_then_command_line_later_wins(tmp_path):
    first = write_spec(tmp_path, "storage_account: fromfirst\nepochs: 3\n", "first.yaml")
    second = write_spec(tmp_path, "storage_account: fromsecond\n", "second.yaml")
    loaded = load_spec(REPO_SPEC, {"epochs": "7"}, [first, second])
    assert loaded.spec.storage.account.name == "fromsecond"
    assert loaded.spec.experiments[0].jobs[0].cntk.command_line_args.endswith("--epochs 7")


def test_env_and_spec_dir_are_in_the_template(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHAI_SPEC_TEST_RG", "rg-from-env")
    text = edited("  name: rg\n", "  name: {{ env.BATCHAI_SPEC_TEST_RG }}\n")
    text = edited("          DATA: $AZ_BATCHAI_MOUNT_ROOT/afs/data", "          DATA: {{ spec_dir }}", text)
    loaded = load_spec(write_spec(tmp_path, text))
    assert loaded.spec.resource_group.name == "rg-from-env"
    assert loaded.spec.experiments[0].jobs[0].input_directories["DATA"] == str(tmp_path.resolve())


def test_a_loop_makes_a_sweep_of_jobs(tmp_path):
    loaded = load_spec(write_spec(tmp_path, SWEEP), {"rates": [0.1, 0.01, 0.001], "nodes": 1})
    jobs = loaded.spec.experiments[0].jobs
    assert [job.name for job in jobs] == ["lr-1", "lr-2", "lr-3"]
    assert jobs[2].custom_toolkit.command_line == "python train.py --lr 0.001"


def test_errors_inside_a_loop_point_at_the_template_line(tmp_path):
    with pytest.raises(SpecError) as raised:
        load_spec(write_spec(tmp_path, SWEEP), {"nodes": "5"})
    message = raised.value.message
    assert message.startswith(f"{tmp_path / 'spec.yaml'}:13:21: experiments[0].jobs[1].node_count: the job needs 5 nodes")
    assert message.endswith("[rendered line 19]")


def test_strict_undefined_even_inside_expressions(tmp_path):
    with pytest.raises(SpecError, match=r"`vars.missing` is undefined"):
        load_spec(write_spec(tmp_path, edited("name: t\n", "name: t{{ vars.missing ~ 'x' }}\n")))


@pytest.mark.parametrize(
    "expression",
    ["''.__class__.__mro__", "env.__class__", "vars.update.__self__", "lipsum.__globals__"],
)
def test_the_sandbox_refuses_unsafe_attributes(tmp_path, expression):
    with pytest.raises(SpecError) as raised:
        load_spec(write_spec(tmp_path, edited("name: t\n", f"name: {{{{ {expression} }}}}\n")))
    assert raised.value.message.startswith(f"{tmp_path / 'spec.yaml'}:2:")
    assert "sandbox" in raised.value.message or "undefined" in raised.value.message


def test_merge_keys_share_settings_and_explicit_keys_win(tmp_path):
    text = edited("    vm_size: STANDARD_NC6\n", "    <<: {vm_size: STANDARD_NC12, vm_priority: lowpriority}\n    vm_size: STANDARD_NC6\n")
    cluster = load_spec(write_spec(tmp_path, text)).spec.clusters[0]
    assert (cluster.vm_size, cluster.vm_priority) == ("STANDARD_NC6", "lowpriority")


def test_windows_line_endings_and_bom_are_accepted(tmp_path):
    path = write_spec(tmp_path, b"\xef\xbb\xbf" + VALID_SPEC.replace("\n", "\r\n").encode())
    assert load_spec(path).spec.name == "t"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


def test_var_file_must_be_a_mapping(tmp_path):
    path = write_spec(tmp_path, "- a\n", "vars.yaml")
    with pytest.raises(SpecError, match=r"vars.yaml:1:1: a var file is a mapping"):
        read_var_file(path)
    broken = write_spec(tmp_path, "a: 1\na: 2\n", "dup.yaml")
    with pytest.raises(SpecError, match=r"dup.yaml:2:1: duplicate key 'a'"):
        read_var_file(broken)
