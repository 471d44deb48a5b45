"""apply and destroy on a terminal: the question is on the screen before an answer is read, only yes/y goes ahead,
and a running job that a change stops is named in the question."""

from __future__ import annotations

import re

from tests.e2e.project import RESOURCE_GROUP, Project
from tests.e2e.terminal import Terminal

PROMPT = "Enter a value:"


def test_apply_asks_on_the_screen_and_no_changes_nothing(project: Project):
    terminal = Terminal(project, "apply")
    screen = terminal.wait_for(PROMPT)
    assert "Plan: 11 to add, 0 to change, 0 to replace, 0 to destroy." in screen
    assert "Do you want to perform these actions?" in screen
    assert "Only 'yes' or 'y' will be accepted to approve." in screen
    assert screen.rstrip().endswith(PROMPT), "the question is the last thing on the screen"
    terminal.type("no")
    terminal.finish(expect=1)
    assert "Error: Apply cancelled; nothing was changed" in terminal.display()
    assert not project.resource_client.resource_groups.check_existence(RESOURCE_GROUP)


def test_enter_alone_changes_nothing_and_y_applies(project: Project):
    terminal = Terminal(project, "apply")
    terminal.wait_for(PROMPT)
    terminal.type("")
    terminal.finish(expect=1)
    assert not project.resource_client.resource_groups.check_existence(RESOURCE_GROUP)

    terminal = Terminal(project, "apply")
    terminal.wait_for(PROMPT)
    terminal.type("y")
    terminal.finish(expect=0)
    assert "Apply complete! Resources: 11 added, 0 changed, 0 replaced, 0 destroyed." in terminal.display()
    assert project.job().execution_state == "succeeded"


def test_destroy_asks_on_the_screen_and_yes_destroys(project: Project):
    project.cli("apply", "-y")
    terminal = Terminal(project, "destroy")
    screen = terminal.wait_for(PROMPT)
    assert "Do you really want to destroy the resources of e2e?" in screen
    assert re.search(r"Note: file_share\.e2eshare: deleting it deletes the outputs of 1 job run, [\d.]+ kB\.", screen), screen
    assert screen.rstrip().endswith(PROMPT)
    terminal.type("yes")
    terminal.finish(expect=0)
    assert "Destroy complete! Resources: 10 destroyed." in terminal.display()
    assert project.cli("destroy", "-y").stdout.strip() == "Nothing to destroy."


def test_the_question_names_the_running_job_a_change_stops(project: Project):
    gate = project.gate("job")
    project.cli("apply", "-y", "--no-wait", "--var", f"job_gate={gate}")
    project.wait_for_job(states=("running",))
    terminal = Terminal(project, "apply", "--var", f"job_gate={gate}", "--var", "exit_code=2")
    screen = terminal.wait_for(PROMPT)
    assert re.search(r"# job\.exp/train is running \(\d+s\): replacing it stops the run", screen), screen
    assert re.search(r"Note: job\.exp/train is running \(\d+s\): replacing it stops the run\.", screen), screen
    terminal.type("n")
    terminal.finish(expect=1)
    assert project.job().execution_state == "running"
    gate.touch()
    assert project.wait_for_job().execution_state == "succeeded"


def test_with_its_output_in_a_file_apply_asks_on_the_terminal(project: Project, tmp_path):
    output = tmp_path / "apply.out"
    terminal = Terminal(project, "apply", stdout_to=output)
    screen = terminal.wait_for(PROMPT)
    assert "Do you want to perform these actions?" in screen
    terminal.type("no")
    terminal.finish(expect=1)
    assert "Plan: 11 to add" in output.read_text() and PROMPT not in output.read_text()
