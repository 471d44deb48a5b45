"""The models themselves: server defaults, immutability, helpers, durations, every field documented."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

import batchai_spec.spec as spec_package
from batchai_spec.spec import DEFAULT_IMAGE, Cluster, FileShare, Job, JobConstraints, Spec, load_spec


@pytest.fixture(scope="module")
def sample() -> Spec:
    return load_spec("specs/mnist-cntk.yaml").spec


def test_defaults_are_what_the_service_fills_in(sample):
    cluster, job = sample.clusters[0], sample.experiments[0].jobs[0]
    assert (cluster.vm_priority, cluster.scale.manual.node_deallocation_option) == ("dedicated", "requeue")
    assert cluster.image is None  # the service's own default (Batch AI: DEFAULT_IMAGE)
    assert sample.service == "batchai"
    assert (DEFAULT_IMAGE.publisher, DEFAULT_IMAGE.offer, DEFAULT_IMAGE.sku, DEFAULT_IMAGE.version) == (
        "Canonical", "UbuntuServer", "16.04-LTS", "latest"
    )
    mount = cluster.node_setup.mount_volumes.azure_file_shares[0]
    assert (mount.file_mode, mount.directory_mode) == ("0777", "0777")
    assert job.scheduling_priority == "normal"
    assert job.constraints.max_wall_clock_time == timedelta(days=7)
    assert job.cntk.language_type == "Python"
    assert sample.workspace_location == sample.storage_location == "eastus"
    assert sample.resource_group.delete_on_destroy is False


def test_models_are_frozen(sample):
    with pytest.raises(ValidationError, match="frozen"):
        sample.clusters[0].vm_size = "STANDARD_NC12"


def test_lookup_helpers(sample):
    assert sample.cluster("MyCluster") is sample.clusters[0]
    assert sample.file_share("batchaiquickstart").quota_gb == 10
    with pytest.raises(KeyError):
        sample.cluster("other")
    with pytest.raises(KeyError):
        sample.file_share("other")
    name, settings = sample.experiments[0].jobs[0].toolkit
    assert name == "cntk" and settings is sample.experiments[0].jobs[0].cntk


def test_implied_directories_include_parents_and_upload_directories():
    share = FileShare(
        name="share",
        directories=("a/b/c", "x"),
        uploads=({"source": "f.txt", "destination": "u/v/f.txt"}, {"source": "*.txt", "destination": "g/"}),
    )
    assert share.implied_directories() == ("a", "g", "u", "x", "a/b", "u/v", "a/b/c")


@pytest.mark.parametrize(
    ("written", "expected"),
    [("P7D", timedelta(days=7)), ("PT1H30M", timedelta(minutes=90)), (3600, timedelta(hours=1)), ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)), ("00:10:00", timedelta(minutes=10))],
)
def test_wall_clock_time_accepts_iso_timespan_and_seconds(written, expected):
    assert JobConstraints(max_wall_clock_time=written).max_wall_clock_time == expected


@pytest.mark.parametrize("written", ["P8D", 0, "-PT1H"])
def test_wall_clock_time_is_positive_and_at_most_7_days(written):
    with pytest.raises(ValidationError):
        JobConstraints(max_wall_clock_time=written)


def test_cluster_and_job_can_be_built_directly():
    cluster = Cluster(name="c", vm_size="STANDARD_NC6", scale={"auto": {"minimum_node_count": 0, "maximum_node_count": 4}}, user_account={"admin_user_name": "u", "ssh_public_key": "ssh-ed25519 AAAAtest"})
    assert cluster.scale.max_nodes == 4 and cluster.scale.auto.initial_node_count == 0
    job = Job(name="j", cluster="c", node_count=2, std_out_err_path_prefix="/o", tensorflow={"python_script_file_path": "t.py", "parameter_server_count": 2})
    assert job.toolkit[0] == "tensorflow"
    with pytest.raises(ValidationError, match="parameter_server_count exceeds"):
        Job(name="j", cluster="c", node_count=1, std_out_err_path_prefix="/o", tensorflow={"python_script_file_path": "t.py", "parameter_server_count": 2})


def test_every_field_of_every_model_has_a_description():
    models = [value for value in vars(spec_package).values() if isinstance(value, type) and issubclass(value, BaseModel)]
    assert len(models) > 30
    undocumented = [f"{model.__name__}.{name}" for model in models for name, field in model.model_fields.items() if not field.description]
    assert undocumented == []
