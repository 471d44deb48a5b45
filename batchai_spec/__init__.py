"""batchai-spec: a declarative provisioner for GPU training on Azure Batch AI."""

__version__ = "0.1.0"
