"""Golden JSON and Markdown of a plan that does a bit of everything, on the fixture spec.

The expected outputs live in tests/plan/golden/. After an intended change of the output, regenerate them with

    BATCHAI_SPEC_REGENERATE_GOLDEN=1 python -m pytest tests/plan/test_plan_golden.py

and review the diff before committing it. What differs per run (subscription id, state dir, spec path, the live
state's fingerprints) is masked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from azure.mgmt.batchai import models as batchai

from batchai_spec.plan.render_markdown import render_markdown
from tests.plan.raw_sdk import EXPERIMENT, RG, WORKSPACE

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("BATCHAI_SPEC_REGENERATE_GOLDEN") == "1"


def _drop_caffe2(document: dict) -> None:
    jobs = document["experiments"][0]["jobs"]
    document["experiments"][0]["jobs"] = [job for job in jobs if job["name"] != "caffe2"]


@pytest.fixture
def mixed_plan(project, monkeypatch):
    """Every action and field class: tags, scale, image, secret, file content, a deleted and an undeclared job."""
    raw = project.converged()
    raw.wait_for_gpu_jobs()  # so that the replaced gpu cluster takes none of its jobs along
    raw.batchai.clusters.update(RG, WORKSPACE, "gpu", batchai.ClusterUpdateParameters(
        scale_settings=batchai.ScaleSettings(manual=batchai.ManualScaleSettings(target_node_count=2))))
    raw.batchai.jobs.begin_delete(RG, WORKSPACE, EXPERIMENT, "pytorch").result()
    monkeypatch.setenv("PLAN_ADMIN_PASSWORD", "admin-pw-rotated-0c1d")
    project.edit("tags: {project: plan-tests}", "tags: {project: plan-tests, stage: dev}")
    project.edit("sku: 18.04-LTS", "sku: 20.04-LTS")
    project.edit("epochs = 2", "epochs = 3", path="inputs/solver.cfg")
    project.edit_yaml(_drop_caffe2)
    return project.plan(), project


def _masked(text: str, project) -> str:
    endpoint = project.emulator.endpoint
    for value, mask in (
        (endpoint.subscription_id, "<subscription>"),
        (str(project.state_dir.resolve()), "<state-dir>"),
        (str(project.spec), "<spec>"),
    ):
        text = text.replace(value, mask)
    return text


def _check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if REGENERATE:
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} differs; see the module docstring to regenerate it"


def test_plan_json_matches_golden(mixed_plan):
    plan, project = mixed_plan
    document = plan.to_json()
    document["live_fingerprint"] = document["content_fingerprint"] = "<fingerprint>"
    _check("mixed-plan.json", _masked(json.dumps(document, indent=2, sort_keys=True), project) + "\n")


def test_plan_markdown_matches_golden(mixed_plan):
    plan, project = mixed_plan
    _check("mixed-plan.md", _masked(render_markdown(plan), project))
