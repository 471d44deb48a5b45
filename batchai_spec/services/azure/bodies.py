"""Spec models -> parts of request bodies, for every service on Azure: plain values with secrets kept `Sensitive`,
name/value lists."""

from __future__ import annotations

from typing import Any

from batchai_spec.sensitive import Sensitive


def plain(model: Any) -> Any:
    """A spec model as a plain dict with secrets kept as Sensitive."""
    from pydantic import BaseModel, SecretStr

    if isinstance(model, SecretStr):
        return Sensitive(model.get_secret_value())
    if isinstance(model, BaseModel):
        return {name: plain(getattr(model, name)) for name in type(model).model_fields}
    if isinstance(model, dict):
        return {key: plain(value) for key, value in model.items()}
    if isinstance(model, (list, tuple)):
        return [plain(value) for value in model]
    return model


def named_list(mapping: dict[str, Any] | None, value_key: str = "value") -> list[dict[str, Any]]:
    return [{"name": name, value_key: value} for name, value in sorted((mapping or {}).items())]


def secret_list(mapping: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [{"name": name, "value": plain(value)} for name, value in sorted((mapping or {}).items())]
