"""The clients a service process owns for its lifetime: S3, producer, keys, consumers.

A service's lifespan creates one :class:`ServiceRuntime`, starts it, adds its consumers, and stops
it on shutdown (uvicorn turns SIGTERM into that shutdown): consumers finish their batch and
commit, then the producer flushes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from contentmatch_shared.audit import AuditLog
from contentmatch_shared.auth import KeyStore, RequestGuard
from contentmatch_shared.kafka.admin import ensure_topics
from contentmatch_shared.kafka.producer import EventProducer
from contentmatch_shared.kafka.runner import ConsumerRunner, Handler
from contentmatch_shared.settings import Settings
from contentmatch_shared.storage import ObjectStore
from contentmatch_shared.topics import TopicSpec

log = logging.getLogger(__name__)

_STARTUP_TIMEOUT_S = 90.0
_SHUTDOWN_TIMEOUT_S = 30.0


class ServiceRuntime:
    def __init__(self, settings: Settings, service: str) -> None:
        self.settings = settings
        self.service = service
        self.store = ObjectStore(settings)
        self.audit = AuditLog(self.store, service)
        self.keys = KeyStore(self.store, settings, self.audit)
        self.producer = EventProducer(settings, service)
        self.runners: list[ConsumerRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._background: list[asyncio.Task[None]] = []
        self._kafka_up, self._kafka_checked_at = True, float("-inf")

    def guard(
        self,
        media_routes: Iterable[tuple[str, str]] = (),
        media_limit_bytes: int | None = None,
        public_paths: Iterable[str] = (),
    ) -> RequestGuard:
        """The HTTP request guard of this service (keys, rate limits, body limits)."""
        return RequestGuard(
            self.keys,
            self.settings,
            media_routes=media_routes,
            media_limit_bytes=media_limit_bytes,
            public_paths=public_paths,
        )

    async def start(self) -> None:
        """Wait for S3 and Kafka (they may still be starting), create buckets and topics."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STARTUP_TIMEOUT_S
        while True:
            try:
                await self.store.ensure_buckets()
                break
            except Exception as exc:
                if loop.time() > deadline:
                    raise
                log.warning("S3 not ready (%s); retrying", exc)
                await asyncio.sleep(1.0)
        await ensure_topics(self.settings, timeout_s=max(deadline - loop.time(), 10.0))
        await self.producer.start()

    async def add_consumer(
        self, group: str, topics: list[TopicSpec], handler: Handler
    ) -> ConsumerRunner:
        runner = ConsumerRunner(
            self.settings,
            service=self.service,
            group=group,
            topics=topics,
            handler=handler,
            producer=self.producer,
            dependency_problem=self.dependency_problem,
        )
        await runner.start()
        self.runners.append(runner)
        self._tasks.append(asyncio.create_task(runner.run(), name=f"consumer:{group}"))
        return runner

    def spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        """Run a long-lived background coroutine whose failure makes the service unhealthy."""
        task = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._background.append(task)
        return task

    def broken(self) -> str | None:
        """Why the process is broken (a consumer or background task crashed), or None.

        A consumer stopped at its dead-letter limit is not broken: restarting the process would
        only dead-letter the next records too. It shows in :meth:`consumers` and alerts instead.
        """
        for task in [*self._tasks, *self._background]:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return f"{task.get_name()} stopped: {task.exception()!r}"
        return None

    def consumers(self) -> dict[str, str]:
        """Each consumer group's state (``running``, or ``stopped: <why>``) for ``/readyz``."""
        return {
            r.group: f"stopped: {r.stopped}" if r.stopped is not None else "running"
            for r in self.runners
        }

    async def dependency_problem(self) -> str | None:
        """Why S3 or Kafka is unusable right now, or None."""
        try:
            await asyncio.wait_for(self.store.ping(), timeout=10.0)
        except Exception as exc:
            return f"S3 unreachable: {exc!r}"
        if not await self._kafka_reachable():
            return f"Kafka unreachable at {self.settings.kafka_bootstrap}"
        return None

    async def ready(self) -> str | None:
        if reason := self.broken():
            return reason
        return await self.dependency_problem()

    async def kafka_reachable(self, max_age_s: float = 1.0) -> bool:
        """Whether a broker accepted a connection within the last ``max_age_s`` seconds (checked
        again when older): lets a route refuse a body it could not publish, before reading it."""
        now = asyncio.get_running_loop().time()
        if now - self._kafka_checked_at > max_age_s:
            self._kafka_up = await self._kafka_reachable(timeout_s=1.0)
            self._kafka_checked_at = now
        return self._kafka_up

    async def _kafka_reachable(self, timeout_s: float = 2.0) -> bool:
        """A TCP connection to any bootstrap server: cheap, and independent of cached metadata."""
        for server in self.settings.kafka_bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]"), int(port)), timeout_s
                )
            except (OSError, TimeoutError, ValueError):
                continue
            writer.close()
            await writer.wait_closed()
            return True
        return False

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for runner in self.runners:
            runner.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=_SHUTDOWN_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.producer.stop()
