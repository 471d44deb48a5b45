"""Turning a request path into a place on disk that can never be outside its share.

The SDK's directory clients send `a%2Fb` for `a/b`, so each raw segment is decoded and then split again on `/`.
Every resulting name is checked (no empty names, `.`, `..`, backslashes, NUL or control characters), and the final
path is resolved (symbolic links included) and must stay inside the share's directory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from batchai_spec.emulator.routing import ServiceError

_SHARE_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# Azure Files refuses these in names; `/` never reaches here (it splits names).
_FORBIDDEN = re.compile(r'[\\\x00-\x1f"<>|:*?]')
_MAX_NAME_BYTES = 255
_MAX_PATH_CHARS = 2048


@dataclass(frozen=True)
class RequestTarget:
    """What a Files URL names: the account alone, a share, or a path inside a share."""

    account: str
    share: str | None
    names: tuple[str, ...]

    @property
    def relative_path(self) -> str:
        return "/".join(self.names)


def parse_target(raw_path: str) -> RequestTarget:
    raw_segments = raw_path.split("/")
    if raw_segments[0] != "" or len(raw_segments) < 2 or not raw_segments[1]:
        raise _invalid("The request URI does not name an account.")
    account = unquote(raw_segments[1])
    rest = raw_segments[2:]
    if rest and rest[-1] == "":
        # The service root is `/ACCOUNT/`; a trailing slash after a share or path is tolerated the same way.
        rest = rest[:-1]
    if not rest:
        return RequestTarget(account, None, ())
    share = unquote(rest[0])
    if not _SHARE_NAME.match(share):
        raise ServiceError(400, "InvalidResourceName", "The specified resource name contains invalid characters.")
    names: list[str] = []
    for raw in rest[1:]:
        names.extend(unquote(raw).split("/"))
    for name in names:
        _check_name(name)
    if len("/".join(names)) > _MAX_PATH_CHARS:
        raise _invalid("The specified path is too long.")
    return RequestTarget(account, share, tuple(names))


def split_path(path: str) -> tuple[str, ...]:
    """A path given inside the emulator (e.g. by the Batch AI half), checked like a request path."""
    stripped = path.strip("/")
    names = tuple(stripped.split("/")) if stripped else ()
    for name in names:
        _check_name(name)
    return names


def inside(root: Path, names: tuple[str, ...]) -> Path:
    """`root/names...`, refusing any path whose resolved form (links followed) leaves `root`."""
    candidate = root.joinpath(*names)
    resolved_root = os.path.realpath(root)
    resolved = os.path.realpath(candidate)
    if resolved != resolved_root and not resolved.startswith(resolved_root + os.sep):
        raise ServiceError(400, "InvalidResourceName", "The specified resource name is not valid.")
    return candidate


def valid_name(name: str) -> bool:
    return (
        name not in ("", ".", "..")
        and not _FORBIDDEN.search(name)
        and len(name.encode("utf-8", "surrogatepass")) <= _MAX_NAME_BYTES
    )


def _check_name(name: str) -> None:
    if not valid_name(name):
        raise ServiceError(400, "InvalidResourceName", "The specified resource name contains invalid characters.")


def _invalid(message: str) -> ServiceError:
    return ServiceError(400, "InvalidUri", message)
