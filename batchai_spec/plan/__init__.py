"""Desired graph x live state -> an ordered plan of changes, and its renderings."""

from batchai_spec.plan.diff import build_plan, build_destroy_plan
from batchai_spec.plan.model import Action, FieldChange, Plan, ResourceChange

__all__ = ["Action", "FieldChange", "Plan", "ResourceChange", "build_plan", "build_destroy_plan"]
