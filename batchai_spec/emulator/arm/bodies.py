"""Checks of ARM request bodies shared by the resource providers."""

from __future__ import annotations

from typing import Any

from batchai_spec.emulator.routing import ServiceError


def json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ServiceError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def tags_of(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(value, str) for value in tags.values()):
        raise ServiceError(400, "InvalidTag", "Tags must be an object of string values.")
    return tags


def required_location(body: dict[str, Any]) -> str:
    location = body.get("location")
    if not isinstance(location, str) or not location:
        raise ServiceError(400, "LocationRequired", "The location property is required for this definition.")
    return location


def same_location(first: str, second: str) -> bool:
    """ARM treats `West Europe` and `westeurope` as one location."""
    return first.replace(" ", "").lower() == second.replace(" ", "").lower()
