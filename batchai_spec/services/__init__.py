"""The services a spec is realised with, each a package with a `REGISTRY` of kind adapters (batchai_spec/kinds.py)
and a `connect(endpoint, spec_name, parallelism=)` that returns its Connection. The only client-side code that
imports the Azure SDKs lives under here; the core (graph, plan/, engine/) sees the registry and the connection.

Imported by name when a command runs, so that the CLI starts without the SDKs."""

from __future__ import annotations

import importlib
from types import ModuleType

from batchai_spec.errors import UserError

SERVICES = ("batchai", "batch")
DEFAULT_SERVICE = "batchai"
# How plans, status and messages name each service.
TITLES = {"batchai": "Batch AI", "batch": "Azure Batch"}


def service_named(name: str) -> ModuleType:
    if name not in SERVICES:
        raise UserError(f"unknown service {name!r}: use {' or '.join(repr(s) for s in SERVICES)}")
    return importlib.import_module(f"batchai_spec.services.{name}")
