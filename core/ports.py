"""What the invoker, ingress and admin need of the runtime, declared as small Protocols.

Each of them gets only these (and `Clock`), never the whole `Server`: what a part may touch is
then visible in its constructor, and a test can drive a part with a few fakes instead of a
running server. `Server` implements `Partitions` and `Waiters`; `MetaStore` is `Metadata`;
`PartitionProcessor` is a `Partition`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rstq.core import actions as a
    from rstq.core import commands as c
    from rstq.core.model import PartitionState
    from rstq.core.processor import Precheck
    from rstq.core.schema import Schema


@dataclass
class Result:
    """An invocation's result, as handed to the callers waiting for it."""

    value: bytes | None
    failure: tuple[int, str] | None
    stacktrace: str = ""


class Partition(Protocol):
    """One partition: its state (read it, never write it) and proposals to its log."""

    @property
    def state(self) -> PartitionState: ...

    @property
    def running(self) -> bool: ...

    def propose_nowait(self, command: c.Command, precheck: Precheck | None = None,
                       ) -> asyncio.Future[list[a.Action]]: ...

    async def propose(self, command: c.Command, precheck: Precheck | None = None,
                      ) -> list[a.Action]: ...


class Partitions(Protocol):
    """Routing: the partition by index, or the one owning an invocation id or partition key."""

    def partition(self, index: int) -> Partition: ...

    def partition_for_id(self, invocation_id: str) -> Partition: ...

    def partition_for_key(self, partition_key: int) -> Partition: ...

    async def propose_to(self, invocation_id: str, cmd: c.Command) -> list[a.Action]: ...


class SchemaSource(Protocol):
    """The schema (deployments, services) as it is now: it changes as deployments are
    registered and removed, so read it at each use instead of keeping what it held."""

    @property
    def schema(self) -> Schema: ...


class Metadata(SchemaSource, Protocol):
    """The schema and proposals to the metadata log it is applied from."""

    async def propose(self, cmd: c.RegisterDeployment | c.RemoveDeployment) -> None: ...


class Waiters(Protocol):
    """Callers waiting for invocation results (ingress calls, attach)."""

    def wait_result(self, invocation_id: str) -> asyncio.Future[Result]: ...

    def forget_waiter(self, invocation_id: str, fut: asyncio.Future[Result]) -> None: ...


@dataclass(frozen=True)
class Limits:
    """What the runtime accepts, fixed when the server is made (`ServerConfig` has the docs)."""

    max_body_bytes: int
    max_journal_entry_bytes: int
    max_state_value_bytes: int
    max_inbox: int
    enable_protocol_v7: bool
