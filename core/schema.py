"""Deployments and services: the cluster's metadata, kept in its own log.

Registering a deployment appends `RegisterDeployment` (with the discovered manifest) to the
metadata log; applying it makes each of its services point at the deployment with a new
revision. New invocations are pinned to the latest revision's deployment; in-flight ones keep
theirs (the pin is in their Invoke command).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from rstq.core import commands as c
from rstq.core.clock import Clock
from rstq.core.commands import HandlerTy, ServiceTy
from rstq.core.discovery import (
    SERVER_DEFAULTS,
    EffectiveSettings,
    HandlerDef,
    Manifest,
    ServerDefaults,
    ServiceDef,
    ServiceType,
    effective_settings,
    from_json,
    pick_protocol_version,
)
from rstq.core.log.api import FsyncPolicy
from rstq.core.log.local import LocalLog

SERVICE_TY = {
    ServiceType.SERVICE: ServiceTy.SERVICE,
    ServiceType.VIRTUAL_OBJECT: ServiceTy.VIRTUAL_OBJECT,
    ServiceType.WORKFLOW: ServiceTy.WORKFLOW,
}


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    uri: str
    manifest: Manifest
    created_at: int
    use_http_11: bool
    additional_headers: tuple[tuple[str, str], ...]
    protocol_version: int

    @property
    def bidi(self) -> bool:
        return self.manifest.protocol_mode.value == "BIDI_STREAM" and not self.use_http_11

    @property
    def services(self) -> list[str]:
        return [s.name for s in self.manifest.services]


@dataclass(frozen=True)
class Service:
    name: str
    revision: int
    deployment_id: str
    definition: ServiceDef
    defaults: ServerDefaults = SERVER_DEFAULTS  # the server's, where the definition sets none

    @property
    def ty(self) -> ServiceTy:
        return SERVICE_TY[self.definition.ty]

    @property
    def public(self) -> bool:
        return not bool(self.definition.ingress_private)

    def handler(self, name: str) -> HandlerDef | None:
        return self.definition.handler(name)

    def handler_ty(self, name: str) -> HandlerTy:
        h = self.handler(name)
        if h is None or h.ty is None:
            return HandlerTy.NONE
        return HandlerTy(h.ty.value.lower())

    def settings(self, handler: str | None = None) -> EffectiveSettings:
        """A handler's effective settings; without one, the service's own."""
        return effective_settings(self.definition,
                                  self.handler(handler) if handler is not None else None,
                                  self.defaults)


@dataclass
class Schema:
    deployments: dict[str, Deployment] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    applied_lsn: int = 0
    version: int = 0  # bumped on every change (caches of the SQL views key on it)
    defaults: ServerDefaults = SERVER_DEFAULTS  # the server's (ServerConfig.defaults)

    def apply(self, ts_ms: int, cmd: c.Command, enable_v7: bool = False) -> None:
        if isinstance(cmd, c.RegisterDeployment):
            manifest = from_json(cmd.manifest_json)
            dep = Deployment(cmd.deployment_id, cmd.uri, manifest, ts_ms, cmd.use_http_11,
                             tuple(cmd.additional_headers),
                             pick_protocol_version(manifest, enable_v7=enable_v7))
            self.deployments[dep.deployment_id] = dep
            for sdef in manifest.services:
                prev = self.services.get(sdef.name)
                revision = prev.revision + 1 if prev is not None else 1
                self.services[sdef.name] = Service(sdef.name, revision, dep.deployment_id, sdef,
                                                   self.defaults)
        elif isinstance(cmd, c.RemoveDeployment):
            self.deployments.pop(cmd.deployment_id, None)
            for name in [n for n, s in self.services.items()
                         if s.deployment_id == cmd.deployment_id]:
                del self.services[name]
        self.version += 1

    def deployment_for_uri(self, uri: str) -> Deployment | None:
        norm = uri.rstrip("/")
        return next((d for d in self.deployments.values() if d.uri.rstrip("/") == norm), None)


class MetaStore:
    """The metadata log and the schema applied from it."""

    def __init__(self, log_: LocalLog, clock: Clock, enable_v7: bool = False,
                 defaults: ServerDefaults = SERVER_DEFAULTS) -> None:
        self.log = log_
        self.clock = clock
        self.enable_v7 = enable_v7
        self.schema = Schema(defaults=defaults)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, directory: Path, clock: Clock, fsync: FsyncPolicy,
                   enable_v7: bool = False,
                   defaults: ServerDefaults = SERVER_DEFAULTS) -> MetaStore:
        store = cls(await LocalLog.open(directory, fsync=fsync), clock, enable_v7, defaults)
        for lsn, payload in store.log.read(1):
            env = c.decode(payload)
            store.schema.apply(env.ts_ms, env.command, enable_v7)
            store.schema.applied_lsn = lsn
        return store

    async def propose(self, cmd: c.RegisterDeployment | c.RemoveDeployment) -> None:
        async with self._lock:  # one writer: log order is apply order
            ts = self.clock.now_ms()
            lsn = await self.log.append(c.encode(ts, cmd))
            self.schema.apply(ts, cmd, self.enable_v7)
            self.schema.applied_lsn = lsn

    async def close(self) -> None:
        await self.log.close()


def retention_ms(service: Service, handler: str, idempotent: bool,
                 workflow_run: bool) -> tuple[int, int]:
    """(completion, journal) retention in ms of a new invocation: restate's
    compute_retention (ingress calls and service-to-service calls alike)."""
    s = service.settings(handler)
    if workflow_run or idempotent:
        completion = s.workflow_completion_retention_ms if workflow_run \
            else s.idempotency_retention_ms
        return completion, min(s.journal_retention_ms, completion)
    return s.journal_retention_ms, s.journal_retention_ms
