"""A TCP proxy in front of the test database that can cut every connection at once: a database
outage that a test can start and end without stopping the server the other tests share.

It runs its own event loop in a thread: litestar's test client runs the app in another thread, and
the proxy must keep forwarding while the test's own loop waits on that client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["DatabaseProxy"]


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        self._url = urlsplit(database_url)
        query = dict(parse_qsl(self._url.query))
        socket_dir = query.get("host", "")
        self._unix_path = (
            f"{socket_dir}/.s.PGSQL.{self._url.port or 5432}" if socket_dir.startswith("/") else None
        )
        self._target = (self._url.hostname or "127.0.0.1", self._url.port or 5432)
        self._server: asyncio.Server | None = None
        self._port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._connections: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="db-proxy")
        self._thread.start()

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def start(self) -> None:
        """Accept connections (again, on the same port)."""
        self._call(self._start())

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self._call(self._cut())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def url(self) -> str:
        """The database URL, through the proxy."""
        query = urlencode([(k, v) for k, v in parse_qsl(self._url.query) if k != "host"])
        credentials = self._url.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self._port}" if credentials else f"127.0.0.1:{self._port}"
        return urlunsplit(self._url._replace(netloc=netloc, query=query))

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        for connection in self._connections:
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._connections.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self._unix_path:
                server_reader, server_writer = await asyncio.open_unix_connection(self._unix_path)
            else:
                server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, server_writer))
        try:
            await asyncio.gather(
                self._pump(client_reader, server_writer), self._pump(server_reader, client_writer)
            )
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()
            self._connections.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)
