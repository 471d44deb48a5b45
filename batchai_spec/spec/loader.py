"""load_spec: read a spec file, render it, parse it, validate it; every problem becomes one located SpecError."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from batchai_spec.spec.base import KeyPath
from batchai_spec.spec.errors import SourceLocation, SpecError, validation_error_to_spec_error
from batchai_spec.spec.model import Spec
from batchai_spec.spec.template import RenderedTemplate, TemplateProblem, render_template
from batchai_spec.spec.yaml_document import MAX_SPEC_BYTES, Position, YamlDocument, YamlProblem, mib, parse_yaml

_SHORTEST_SCRUBBED_VALUE = 6


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the file it came from, able to point at any of its keys in that file."""

    spec: Spec
    path: Path
    spec_dir: Path
    rendered: RenderedTemplate = field(repr=False)
    document: YamlDocument = field(repr=False)
    # The template's `vars` (var files, then --var): a saved plan keeps them, so that `apply PLANFILE` needs none.
    variables: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def location(self, loc: KeyPath) -> str:
        """`file:line:column` of the key path, e.g. ("experiments", 0, "jobs", 1) -> "specs/x.yaml:30:9"."""
        return str(self.source_location(loc))

    def error(self, loc: KeyPath, problem: str) -> SpecError:
        """A SpecError `file:line:column: key.path: problem` for problems found after loading (plan time)."""
        return self.source_location(loc).error(loc, problem)

    def source_location(self, loc: KeyPath, *, at_key: bool = False) -> SourceLocation:
        return _locate(str(self.path), self.rendered, self.document, loc, at_key=at_key)


def load_spec(
    path: str | Path, variables: Mapping[str, Any] | None = None, var_files: Sequence[str | Path] = ()
) -> LoadedSpec:
    """Load and validate a spec. `vars` in the template = var files in order, then `variables` (later wins)."""
    path = Path(path)
    spec_dir = path.resolve().parent
    template_vars: dict[str, Any] = {}
    for var_file in var_files:
        template_vars.update(read_var_file(Path(var_file)))
    template_vars.update(variables or {})
    source = read_text(path)
    context = {"env": dict(os.environ), "vars": template_vars, "spec_dir": str(spec_dir)}
    try:
        rendered = render_template(source, context)
    except TemplateProblem as problem:
        where = SourceLocation(str(path), *(_line_column(problem.position)))
        raise SpecError(f"{where}: {_scrub(problem.message, context)}") from None
    document = _parse(str(path), rendered)
    if not isinstance(document.data, dict):
        raise _locate(str(path), rendered, document, ()).error(
            (), f"a spec is a mapping of keys (version, name, resource_group, ...), not a {_yaml_kind(document.data)}"
        )
    try:
        spec = Spec.model_validate(document.data)
    except ValidationError as error:
        raise validation_error_to_spec_error(
            error, Spec, lambda loc, at_key: _locate(str(path), rendered, document, loc, at_key=at_key)
        ) from None
    return LoadedSpec(spec, path, spec_dir, rendered, document, template_vars)


def read_var_file(path: Path) -> dict[str, Any]:
    """A --var-file: a YAML mapping of template variables (not templated itself), from a file or a pipe."""
    text = read_text(path, pipes=True)
    try:
        document = parse_yaml(text)
    except YamlProblem as problem:
        raise SpecError(f"{SourceLocation(str(path), *_line_column(problem.position))}: {problem.message}") from None
    if not isinstance(document.data, dict):
        raise SpecError(f"{path}:1:1: a var file is a mapping of variable names to values, not a {_yaml_kind(document.data)}")
    return {str(key): value for key, value in document.data.items()}


def read_text(path: Path, *, pipes: bool = False) -> str:
    """The file's text; missing, unreadable, binary and non-UTF-8 files are SpecErrors, and so are files that are not
    regular files (a device, a directory; a FIFO unless `pipes`) or are over MAX_SPEC_BYTES."""
    data = _read_bounded(path, pipes=pipes)
    if b"\0" in data:
        offset = data.index(b"\0")
        raise SpecError(f"{path}:{_byte_position(data, offset)}: a binary file, not a YAML text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}:{_byte_position(data, error.start)}: not UTF-8 text (byte 0x{data[error.start]:02x})") from None
    return text.replace("\r\n", "\n")


# A var file given as a pipe (`--var-file <(...)`) is written by another process: how long to wait for all of it.
PIPE_SECONDS = 10.0
_PIPES_READ: dict[tuple[str, int], bytes] = {}
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _read_bounded(path: Path, *, pipes: bool = False) -> bytes:
    """At most MAX_SPEC_BYTES of a regular file: its size is checked before reading (stat) and while reading (it may
    grow). A FIFO or device is refused from stat, never opened; the open does not block and is checked again
    (fstat), in case the path was replaced in between. With `pipes`, a pipe or FIFO is read too (a var file given
    as `<(pass show vars)` keeps secrets off the disk), within PIPE_SECONDS and the same size."""
    try:
        status = os.stat(path)
        if pipes and stat.S_ISFIFO(status.st_mode):
            # A pipe is read once: a command that reads its var files again (apply does) gets the same bytes.
            key = (str(path), status.st_ino)
            if key not in _PIPES_READ:
                _PIPES_READ[key] = _read_pipe(path)
            return _PIPES_READ[key]
        _refuse_unless_small_regular(path, status)
        descriptor = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a YAML file") from None
    except OSError as error:
        raise SpecError(f"{path}: cannot read: {error.strerror}") from None
    with open(descriptor, "rb") as file:
        try:
            _refuse_unless_small_regular(path, os.fstat(file.fileno()))
            data = file.read(MAX_SPEC_BYTES + 1)
        except OSError as error:
            raise SpecError(f"{path}: cannot read: {error.strerror}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: more than {mib(MAX_SPEC_BYTES)} when read, over the limit of a spec or var file")
    return data


def _read_pipe(path: Path) -> bytes:
    """What a pipe's writer writes until it closes it, at most MAX_SPEC_BYTES + 1 bytes and PIPE_SECONDS; a FIFO that
    no writer holds open reads as empty at once (the open does not block)."""
    import selectors

    deadline = time.monotonic() + PIPE_SECONDS
    chunks, size = [], 0
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        raise SpecError(f"{path}: cannot read: {error.strerror}") from None
    with open(descriptor, "rb", buffering=0) as pipe, selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while size <= MAX_SPEC_BYTES:
            try:
                # Read first: with no writer a FIFO reads as ended, while select() would wait for one to come.
                chunk = pipe.read(MAX_SPEC_BYTES + 1 - size)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                break
            if chunk is None:  # nothing yet (a non-blocking read answers None or raises, as the platform does)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SpecError(f"{path}: its writer did not finish within {PIPE_SECONDS:g} seconds")
                selector.select(left)
                continue
            chunks.append(chunk)
            size += len(chunk)
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: more than {mib(MAX_SPEC_BYTES)} when read, over the limit of a spec or var file")
    return b"".join(chunks)


def _refuse_unless_small_regular(path: Path, status: os.stat_result) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise SpecError(f"{path}: is a directory, not a YAML file")
    if not stat.S_ISREG(status.st_mode):
        kind = _file_kind(status.st_mode)
        raise SpecError(f"{path}: is {kind}, not a regular file; specs and var files are read from regular files only")
    if status.st_size > MAX_SPEC_BYTES:
        size = mib(status.st_size, precision=1)
        raise SpecError(f"{path}: {size}, over the {mib(MAX_SPEC_BYTES)} limit of a spec or var file")


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def _line_column(position: Position | None) -> tuple[int, ...]:
    return (position.line, position.column) if position else ()


def _byte_position(data: bytes, offset: int) -> str:
    newline = b"\n"
    line_start = data.rfind(newline, 0, offset) + 1
    return f"{data.count(newline, 0, offset) + 1}:{offset - line_start + 1}"


def _parse(file: str, rendered: RenderedTemplate) -> YamlDocument:
    try:
        return parse_yaml(rendered.text)
    except YamlProblem as problem:
        if problem.position is None:
            raise SpecError(f"{file}:1:1: {problem.message}") from None
        position, note = rendered.source_position(problem.position)
        raise SpecError(f"{SourceLocation(file, position.line, position.column)}: {problem.message}{note}") from None


def _locate(file: str, rendered: RenderedTemplate, document: YamlDocument, loc: KeyPath, *, at_key: bool = False) -> SourceLocation:
    """The key's position when asked (unknown keys) or when its value is a mapping or list, else the value's;
    for a key that is not in the file (a missing key), the position of the nearest enclosing one."""
    at_key = at_key or "[key]" in loc
    loc = tuple(part for part in loc if part != "[key]")
    prefix = loc
    while prefix and prefix not in document.values and prefix not in document.keys:
        prefix = prefix[:-1]
    value = _value_at(document.data, prefix)
    use_key = prefix in document.keys and (at_key or prefix != loc or isinstance(value, (dict, list)))
    position = document.keys[prefix] if use_key else document.values.get(prefix, Position(1, 1))
    source, note = rendered.source_position(position)
    return SourceLocation(file, source.line, source.column, note)


def _value_at(data: Any, loc: KeyPath) -> Any:
    for part in loc:
        data = data[part]
    return data


def _yaml_kind(data: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(data), type(data).__name__)


def _scrub(message: str, context: Mapping[str, Any]) -> str:
    """Hide values of environment variables and vars a template error may quote (they can be secrets)."""
    values = [*context["env"].values(), *context["vars"].values()]
    for value in sorted((v for v in values if isinstance(v, str) and len(v) >= _SHORTEST_SCRUBBED_VALUE), key=len, reverse=True):
        message = message.replace(value, "***")
    return message
