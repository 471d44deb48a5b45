"""What every spec model shares: strict immutable config, constrained string types, located validation errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

KeyPath = tuple[str | int, ...]
SIMILARITY = 0.6  # difflib cutoff for "did you mean"


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are errors and a loaded spec never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LocatedValueError(ValueError):
    """A validation problem that belongs to a key below the validated model, so the message points at that key.

    Pydantic keeps the raised exception in the error's context; the loader appends `loc` to the error's location.
    """

    def __init__(self, loc: KeyPath, message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


def format_key_path(loc: KeyPath) -> str:
    """`clusters[0].scale.manual` for ("clusters", 0, "scale", "manual")."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def ensure_unique(entries: Iterable[tuple[KeyPath, str]], what: str, *, case_sensitive: bool = False) -> None:
    """Reject the second of two equal values; each entry is (key path of the value, value)."""
    seen: dict[str, KeyPath] = {}
    for loc, value in entries:
        key = value if case_sensitive else value.lower()
        if key in seen:
            raise LocatedValueError(loc, f"duplicate {what} '{value}' (also at {format_key_path(seen[key])})")
        seen[key] = loc


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest candidate, or the list of candidates when none is close."""
    candidates = sorted(set(candidates))
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=SIMILARITY)
    if close:
        return f"; did you mean '{close[0]}'?"
    if candidates:
        return f"; expected one of: {', '.join(candidates)}"
    return ""


def _no_dot_segments(path: str) -> str:
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError("a path inside the share may not contain '.' or '..' segments")
    return path


# Batch AI resource names (workspace, cluster, experiment, job) and the spec's own name.
ResourceName = Annotated[str, StringConstraints(pattern=r"^[-\w_]+$", min_length=1, max_length=64)]
ResourceGroupName = Annotated[str, StringConstraints(pattern=r"^[-\w._()]*[-\w_()]$", min_length=1, max_length=90)]
Location = Annotated[str, StringConstraints(pattern=r"^[-\w._]+$", min_length=1, max_length=64)]
# Names of environment variables (also the <ID> in $AZ_BATCHAI_INPUT_<ID> / $AZ_BATCHAI_OUTPUT_<ID>).
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", min_length=1, max_length=256)]
DirectoryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$", min_length=1, max_length=64)]
# A relative path of plain segments: no leading "/", no empty, "." or ".." segment, no character Azure Files refuses.
RelativePath = Annotated[
    str,
    StringConstraints(pattern=r'^[^/\\:*?"<>|]+(/[^/\\:*?"<>|]+)*$', min_length=1, max_length=1024),
    AfterValidator(_no_dot_segments),
]
Tags = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=512)], Annotated[str, StringConstraints(max_length=256)]],
    Field(max_length=50),
]
NonEmptyText = Annotated[str, StringConstraints(min_length=1)]
FileMode = Annotated[str, StringConstraints(pattern=r"^0[0-7]{3}$")]
