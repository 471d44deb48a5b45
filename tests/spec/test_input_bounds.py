"""Inputs cost what they look like: alias bombs, huge files, FIFOs, devices and runaway templates end in one located
message, quickly, through the real command line; specs as large as real ones (a 2,000-job sweep) still load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchai_spec.spec import SpecError, load_spec, read_var_file
from batchai_spec.spec import loader, template, yaml_document
from batchai_spec.spec.yaml_document import MAX_SPEC_BYTES
from tests.cli.running import REPOSITORY
from tests.spec.sample import SWEEP_HEAD, VALID_SPEC, edited, write_spec

# Each refusal below takes a fraction of a second, the interpreter's start included; unbounded, these inputs took
# minutes and gigabytes, or hung. The timeout is the only timing check, and generous, so that a loaded machine does
# not fail it.
TIMEOUT_S = 10

SAMPLE = "specs/mnist-cntk.yaml"


def refused(*args: str | Path) -> str:
    """`batchai-spec ARGS` as a user runs it: exit 1, nothing on stdout, one `Error:` line (no traceback); its text."""
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "batchai_spec", *map(str, args)],
        cwd=REPOSITORY, env=environment, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert (result.returncode, result.stdout) == (1, ""), result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0].removeprefix("Error: ")


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """`levels` levels of `width` aliases each ("billion laughs"): under 600 bytes, 9**9 strings expanded."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * width) + "]" for level in range(1, levels)]
    return "\n".join(lines) + "\n"


# The bound is passed at the third *a4 of line 6: a0..a3 and the keys so far are some 8,300 nodes, each *a4 66,430.
BOMB_REFUSAL = "bomb.yaml:6:18: the alias *a4 expands the document past 250,000 nodes (keys and values), the limit"


def test_the_bomb_is_small():
    assert len(alias_bomb().encode()) < 600


def test_an_alias_bomb_as_the_spec_is_refused_at_the_alias(tmp_path):
    bomb = write_spec(tmp_path, alias_bomb(), "bomb.yaml")
    assert refused("validate", bomb).startswith(f"{tmp_path}/{BOMB_REFUSAL}")


def test_an_alias_bomb_as_a_var_file_is_refused_at_the_alias(tmp_path):
    bomb = write_spec(tmp_path, alias_bomb(), "bomb.yaml")
    assert refused("validate", SAMPLE, "--var-file", bomb).startswith(f"{tmp_path}/{BOMB_REFUSAL}")


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_plan_and_apply_refuse_the_bomb_before_touching_a_target(tmp_path, command):
    bomb = write_spec(tmp_path, alias_bomb(), "bomb.yaml")
    state_dir = tmp_path / "state"
    assert refused(command, bomb, "--state-dir", state_dir, *(["-y"] if command == "apply" else [])).startswith(
        f"{tmp_path}/{BOMB_REFUSAL}"
    )
    assert not state_dir.exists()


def test_a_bomb_in_a_template_is_located_in_the_template(tmp_path):
    text = "{# a comment #}\n" + alias_bomb().replace('"lol"', '"{{ vars.word | default(\'lol\') }}"', 1)
    with pytest.raises(SpecError) as raised:
        load_spec(write_spec(tmp_path, text, "bomb.yaml"))
    assert raised.value.message.startswith(f"{tmp_path}/bomb.yaml:7:18: the alias *a4 expands the document past 250,000")


def test_long_values_repeated_by_aliases_are_bounded_too(tmp_path):
    text = f"a: &a \"{'x' * 100_000}\"\nb: [{', '.join(['*a'] * 30)}]\n"
    with pytest.raises(SpecError) as raised:
        read_var_file(write_spec(tmp_path, text, "vars.yaml"))
    assert raised.value.message.startswith(f"{tmp_path}/vars.yaml:2:") and "past 2 MiB of values, the limit" in raised.value.message


def test_a_recursive_alias_is_named(tmp_path):
    with pytest.raises(SpecError) as raised:
        read_var_file(write_spec(tmp_path, "a: &a [1, *a]\n", "vars.yaml"))
    assert raised.value.message == f"{tmp_path}/vars.yaml:1:11: the alias *a refers to a node that contains it (a recursive alias)"


def test_a_document_without_aliases_is_bounded_by_its_nodes(tmp_path, monkeypatch):
    monkeypatch.setattr(yaml_document, "MAX_NODES", 10)
    with pytest.raises(SpecError) as raised:
        read_var_file(write_spec(tmp_path, "a: [1, 2, 3, 4]\nb: [5, 6, 7]\n", "vars.yaml"))
    assert raised.value.message.startswith(f"{tmp_path}/vars.yaml:2:8: the document has more than 10 nodes (keys and values)")


def test_a_50_mb_spec_is_refused_before_it_is_read(tmp_path):
    spec = tmp_path / "big.yaml"
    with spec.open("w") as file:
        file.write("version: 1\n")
        file.write(("# " + "x" * 97 + "\n") * (500 * 1024))
    assert refused("validate", spec) == f"{spec}: 48.8 MiB, over the 2 MiB limit of a spec or var file"
    assert refused("validate", SAMPLE, "--var-file", spec) == f"{spec}: 48.8 MiB, over the 2 MiB limit of a spec or var file"


def test_the_size_limit_is_exact(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("#" * (MAX_SPEC_BYTES - 1) + "\n")
    with pytest.raises(SpecError, match="the document is empty"):  # read in full, then parsed
        load_spec(spec)
    spec.write_text("#" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(SpecError, match=r"2\.0 MiB, over the 2 MiB limit"):
        load_spec(spec)


def test_a_file_that_grows_past_the_limit_after_its_stat_is_read_no_further(tmp_path, monkeypatch):
    spec = tmp_path / "spec.yaml"
    spec.write_text("#" * (3 * MAX_SPEC_BYTES))
    monkeypatch.setattr(loader, "_refuse_unless_small_regular", lambda path, status: None)  # as if it grew after
    with pytest.raises(SpecError) as raised:
        load_spec(spec)
    assert raised.value.message == f"{spec}: more than 2 MiB when read, over the limit of a spec or var file"


def test_a_fifo_spec_is_refused_without_being_opened_and_one_without_a_writer_reads_as_empty(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # opened for reading, it would block until a writer came: the subprocess's timeout guards that
    expected = f"{fifo}: is a FIFO (named pipe), not a regular file; specs and var files are read from regular files only"
    assert refused("validate", fifo) == expected
    # A var file may be a pipe (`--var-file <(...)`); a FIFO that no writer holds open is empty, at once.
    assert refused("validate", SAMPLE, "--var-file", fifo) == f"{fifo}: the document is empty"


def test_a_var_file_from_a_process_substitution_keeps_values_off_the_disk(tmp_path):
    """`--var-file <(command)`: the variables come through a pipe, read to its end within a deadline."""
    script = f"{sys.executable} -m batchai_spec validate {SAMPLE} --var-file <(sleep 0.2; echo 'storage_account: piped0store')"
    result = subprocess.run(["bash", "-c", script], cwd=REPOSITORY, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert "piped0store" in result.stdout
    # A command that reads its var files twice (apply: the variables a saved plan withheld, then the spec) reads the
    # pipe once.
    pipe_read, pipe_write = os.pipe()
    os.write(pipe_write, b"storage_account: piped1store\n")
    os.close(pipe_write)
    try:
        path = Path(f"/proc/self/fd/{pipe_read}")
        assert read_var_file(path) == read_var_file(path) == {"storage_account": "piped1store"}
    finally:
        os.close(pipe_read)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_is_refused():
    expected = "/dev/zero: is a character device, not a regular file; specs and var files are read from regular files only"
    assert refused("validate", "/dev/zero") == expected
    assert refused("validate", SAMPLE, "--var-file", "/dev/zero") == expected


def test_a_directory_is_refused(tmp_path):
    assert refused("validate", tmp_path) == f"{tmp_path}: is a directory, not a YAML file"
    assert refused("validate", SAMPLE, "--var-file", tmp_path) == f"{tmp_path}: is a directory, not a YAML file"


NESTED_LOOPS = """\
version: 1
name: t
{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}
"""

HUGE_OUTPUT = """\
version: 1
name: t
{% for i in range(100000) %}
{% for j in range(100000) %}
x{{ i }}_{{ j }}: {{ j }}
{% endfor %}
{% endfor %}
"""


def test_nested_loops_that_print_nothing_are_bounded(tmp_path):
    spec = write_spec(tmp_path, NESTED_LOOPS)
    assert refused("validate", spec) == (
        f"{spec}:3:1: the template runs past 1,000,000 loop iterations and calls, the limit (nested loops?)"
    )


def test_a_template_whose_output_is_huge_is_stopped_as_it_passes_the_limit(tmp_path):
    spec = write_spec(tmp_path, HUGE_OUTPUT)
    assert refused("validate", spec) == f"{spec}:5:2: the rendered template passes 2 MiB, the limit of a spec"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("range(1000001) | length", "range() of more than 100,000 numbers, the sandbox's limit"),
        ("range(10 ** 30) | length", "range() of more than 100,000 numbers, the sandbox's limit"),
        ("'x' * 1000000000", "the template makes a value of more than 2 MiB, the limit of a spec"),
        ("[1, 2] * 10000000", "the template makes a value of more than 2 MiB, the limit of a spec"),
        ("10 ** 100000000", "the template makes a number of more than 4,096 bits, the limit"),
    ],
)
def test_a_single_expression_cannot_make_a_huge_value(tmp_path, expression, problem):
    with pytest.raises(SpecError) as raised:
        load_spec(write_spec(tmp_path, edited("name: t\n", f"name: {{{{ {expression} }}}}\n")))
    assert raised.value.message == f"{tmp_path}/spec.yaml:2:7: {problem}"


def test_values_built_up_in_a_loop_are_bounded(tmp_path):
    doubling = "{% set ns = namespace(s='x') %}\n{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}\n"
    text = edited("name: t\n", "name: t\n" + doubling)
    with pytest.raises(SpecError) as raised:
        load_spec(write_spec(tmp_path, text))
    assert raised.value.message == (
        f"{tmp_path}/spec.yaml:4:1: the template makes a value of more than 2 MiB, the limit of a spec"
    )


def test_rendering_has_a_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(template, "RENDER_SECONDS", 0.0)
    text = edited("name: t\n", "name: t\n{% for i in range(3) %}{% endfor %}\n")
    with pytest.raises(SpecError) as raised:
        load_spec(write_spec(tmp_path, text))
    assert raised.value.message == f"{tmp_path}/spec.yaml:3:1: the template takes more than 0 seconds to render, the limit"


# What must still load.


def test_the_sample_spec_still_loads():
    assert load_spec(SAMPLE).spec.name == "mnist-cntk"


def test_a_2000_job_sweep_written_out_loads_well_within_the_bounds(tmp_path):
    from tests.plan.test_offline import write_spec as write_sweep

    spec = write_sweep(tmp_path, jobs=2000)
    assert spec.stat().st_size < MAX_SPEC_BYTES / 3
    assert len(load_spec(spec).spec.experiments[0].jobs) == 2000


SWEEP_TEMPLATE = SWEEP_HEAD + """\
  - name: e1
    jobs:
      - &first
        name: first
        cluster: c1
        node_count: 1
        std_out_err_path_prefix: $AZ_BATCHAI_MOUNT_ROOT/runs
        environment_variables: {DATA: /data, EPOCHS: "40", LOG_LEVEL: info}
        custom_toolkit: {command_line: python train.py}
{% for lr in range(20) %}{% for batch in [16, 32, 64, 128, 256] %}{% for seed in range(20) %}
      - <<: *first
        name: lr{{ lr }}-b{{ batch }}-s{{ seed }}
        custom_toolkit: {command_line: "python train.py --lr 0.{{ lr }} --batch {{ batch }} --seed {{ seed }}"}
{% endfor %}{% endfor %}{% endfor %}
"""


def test_a_2000_job_sweep_from_nested_loops_and_merge_keys_loads(tmp_path):
    loaded = load_spec(write_spec(tmp_path, SWEEP_TEMPLATE))
    jobs = loaded.spec.experiments[0].jobs
    assert len(jobs) == 2001
    assert jobs[-1].name == "lr19-b256-s19" and jobs[-1].environment_variables["EPOCHS"] == "40"
