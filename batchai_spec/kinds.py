"""The interface between the service-neutral core (graph, plan/, engine/) and a service: one adapter per resource
kind, held in one registry per service.

An adapter holds everything about its kind: where the spec declares it and what it depends on (`declared`), its
desired body (`desired`), its address and structural parent, the policy of every field of its body (`fields`), how
it is read (by name, or listed under each live parent), create/update/delete/terminate or a declared `Cannot`,
whether it is waited for, what deleting it deletes, and how a status line shows it. Services implement the I/O
halves with their SDKs; nothing here imports one. `tests/services/test_kind_contract.py` proves every registered
kind complete.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Protocol

if TYPE_CHECKING:
    from batchai_spec.graph import Resource, SpecWalk
    from batchai_spec.observed import Observed, Stored
    from batchai_spec.statuses import ClusterStatus, Watch

ProgressHook = Callable[[int, int], None]


class Policy(str, enum.Enum):
    """What a change of one field of a desired body does."""

    UPDATE = "update"  # changed in place
    REPLACE = "replace"  # forces a new resource


@dataclass(frozen=True)
class Cannot:
    """An operation the service does not offer for a kind, declared (and why) instead of left out."""

    why: str

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(self.why)


class KeptInPlace(Exception):
    """A delete that found a reason to leave the resource where it is (a directory holding others' files): the apply
    goes on and says so."""


@dataclass(frozen=True)
class Declaration:
    """One resource the spec declares, as its walk finds it: identifiers, edges and location, no body yet."""

    ids: dict[str, str]
    spec_path: tuple[Any, ...]
    node: Any = None  # the spec model the body is made from
    depends_on: tuple[str, ...] = ()
    managed: bool = True  # False: the spec only references it (read, never changed)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Readiness:
    """How to tell a created resource is ready: poll until steady with `wanted` usable nodes."""

    poll: Callable[[], ClusterStatus]
    wanted: int


class Kind:
    """The adapter of one resource kind on one service. Subclasses set the class attributes and implement (or
    declare `Cannot` for) each operation; tests/services/test_kind_contract.py checks that they all do."""

    name: ClassVar[str]
    # The ids that make the address, in order: ("experiment", "job") gives job.EXPERIMENT/JOB.
    address_keys: ClassVar[tuple[str, ...]]
    # The kind this one lives in (deleted after it, created before it); None for a top-level kind.
    parent: ClassVar[str | None] = None
    # The policy of each top-level field of the desired body; a field missing here is a defect the contract finds.
    fields: ClassVar[dict[str, Policy]] = {}
    # Kinds that deleting this one deletes with it (a workspace its clusters).
    holds: ClassVar[tuple[str, ...]] = ()
    # How it is read: None = each declared resource by name (`read`); a kind's name = listed under each live
    # resource of that kind (`list_under`, which finds what the spec owns and no longer declares too).
    read_under: ClassVar[str | None] = None
    # Write-only values are compared through fingerprints stored with the resource (Observed.stored).
    stores_fingerprints: ClassVar[bool] = False
    # A resource that belongs to one spec: finding it owned by another spec is an error, not an adoption.
    one_spec_only: ClassVar[bool] = False
    # Runs to an end (a job): never updated, followed after apply, terminated before it is deleted while active.
    runs_to_completion: ClassVar[bool] = False
    # Dependencies that do not take this resource with them when replaced: kind -> "inputs" (only their content
    # matters, through the inputs digest) or "while-active" (only a run still active is replaced).
    loose_dependencies: ClassVar[dict[str, str]] = {}
    # Found by the listing of another kind (a share's walk finds its files) instead of read on its own.
    found_with: ClassVar[str | None] = None
    # The verb its creation and update are shown with, if not "create" and "update" (a file is uploaded).
    write_verb: ClassVar[str | None] = None

    # -- neutral: addresses, spec, policy -------------------------------------------------------------------------

    def address(self, ids: dict[str, str]) -> str:
        return f"{self.name}." + "/".join(ids[key] for key in self.address_keys)

    def ids_in(self, address: str) -> dict[str, str]:
        """The address ids of an address of this kind (the inverse of `address`; the last id may hold slashes)."""
        kind, _, rest = address.partition(".")
        if kind != self.name or not rest:
            raise ValueError(f"{address!r} is not an address of a {self.name}")
        parts = rest.split("/", len(self.address_keys) - 1)
        if len(parts) != len(self.address_keys) or not all(parts):
            raise ValueError(f"{address!r} is not an address of a {self.name}")
        return dict(zip(self.address_keys, parts))

    def parent_address(self, ids: dict[str, str], known: set[str]) -> str | None:
        """The address of what a resource lives in, from its ids (for resources the spec no longer declares): by
        default its parent kind's, named by the id of that kind's name (workspace.{ids['workspace']})."""
        return f"{self.parent}.{ids[self.parent]}" if self.parent else None

    def live_dependencies(self, live: Observed) -> set[str]:
        """What a live resource uses, from its live body (a cluster: the file servers it mounts): deleted after it,
        whether or not the spec still declares either."""
        return set()

    def declared(self, walk: SpecWalk) -> Iterable[Declaration]:
        """The resources of this kind the spec declares."""
        return ()

    def desired(self, declaration: Declaration, walk: SpecWalk) -> dict[str, Any]:
        """The desired body, in the shape the live read is normalised to; write-only values as `Sensitive`."""
        return {}

    def policy(self, path: str) -> Policy:
        """The policy of a changed field (a dotted path such as scale_settings.manual.target_node_count)."""
        top = path.split(".", 1)[0].split("[", 1)[0]
        return self.fields.get(top, Policy.REPLACE)

    def destroy_allowed(self, resource: Resource | None, live: Observed) -> tuple[bool, str]:
        """Whether destroy deletes it, and why: by default what the spec owns."""
        return live.owned, "owned by this spec"

    def status(self, live: Observed) -> tuple[str, str]:
        """(state, details) for `status`."""
        return "present", ""

    # -- I/O, through the service's connection ---------------------------------------------------------------------

    def read(self, connection: Any, resource: Resource) -> Observed:
        raise NotImplementedError(f"{self.name}: read")

    def list_under(self, connection: Any, parent: Observed, graph: Any) -> list[Observed]:
        raise NotImplementedError(f"{self.name}: list_under")

    def create(self, connection: Any, resource: Resource, progress: ProgressHook | None = None) -> None:
        raise NotImplementedError(f"{self.name}: create")

    def update(self, connection: Any, resource: Resource, progress: ProgressHook | None = None) -> None:
        raise NotImplementedError(f"{self.name}: update")

    def delete(self, connection: Any, live: Observed) -> None:
        raise NotImplementedError(f"{self.name}: delete")

    # Only what runs to completion is terminated.
    terminate: Callable[..., None] = Cannot("only a run can be terminated")

    def readiness(self, connection: Any, resource: Resource) -> Readiness | None:
        """What to wait for after a create or update; None: nothing."""
        return None

    def deletion_notes(self, connection: Any, live: Observed) -> list[str]:
        """What a person must know before approving this resource's deletion (what it takes along)."""
        return []

    def can(self, operation: str) -> bool:
        return not isinstance(getattr(self, operation), Cannot)


class Registry:
    """A service's kinds, in apply order (parents first; destroy walks it backwards)."""

    def __init__(self, service: str, kinds: Iterable[Kind]):
        self.service = service
        self._kinds = {kind.name: kind for kind in kinds}

    def __getitem__(self, name: str) -> Kind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    @property
    def order(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self._kinds)}

    def of(self, address: str) -> Kind:
        return self._kinds[address.partition(".")[0]]


class Ownership(Protocol):
    """How a service records what a spec created, so that destroy and pruning touch only that, and what it stored
    with it (the fingerprints of write-only values, under a salt). Batch AI: its workspace's tags for clusters,
    experiments and file servers (services/batchai/ownership.py), the job's environment for jobs."""

    def read(self, kind: str, ids: dict[str, str]) -> tuple[bool, Stored]:
        """(owned by this spec, what it stored) of one resource."""

    def record(self, kind: str, ids: dict[str, str], fingerprints: str = "") -> None:
        """Before the resource is created: an apply interrupted after the create still knows it is its own."""

    def forget(self, kind: str, ids: dict[str, str]) -> None:
        """After the resource is deleted."""

    def salt(self, ids: dict[str, str]) -> str:
        """The salt of the fingerprints of the resource's write-only values (made on first use)."""


class Connection:
    """One command's link to a service on an endpoint: what the adapters' I/O uses, and what the engine needs to
    classify failures and follow running work, without knowing the service's SDK."""

    registry: Registry
    watch: Watch
    # What the live read found (batchai_spec/live.py fills it): the writes read it.
    observed: dict[str, Observed]

    def is_transient(self, error: BaseException) -> bool:
        raise NotImplementedError

    def retry_after(self, error: BaseException) -> float | None:
        raise NotImplementedError

    def describe(self, error: BaseException) -> str:
        raise NotImplementedError
