"""The 3-step workflow of bench/suite.py on DBOS Transact (SQLite system database), behind a
minimal keep-alive HTTP/1.1 server (stdlib asyncio), so the same load generator drives it.

    <dbos venv>/bin/python bench/dbos_app.py PORT SQLITE_PATH

POST /BenchSteps/three with a JSON string body runs the workflow (three @DBOS.step) to
completion and answers its JSON result. DBOS is a library: this process is both the "server"
(durable state in SQLite) and the "service" (the workflow code). Runs in its own venv (see
bench/suite.py: dbos is not a dependency of rstq).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from dbos import DBOS


def main() -> None:
    port, db = int(sys.argv[1]), sys.argv[2]
    DBOS(config={"name": "rstq-bench", "system_database_url": f"sqlite:///{db}",
                 "log_level": "WARNING"})

    @DBOS.step()
    async def one(who: str) -> str:
        return who.upper()

    @DBOS.step()
    async def two(who: str) -> int:
        return len(who)

    @DBOS.step()
    async def three_(who: str) -> str:
        return who[::-1]

    @DBOS.workflow()
    async def three(who: str) -> str:
        return f"{await one(who)}:{await two(who)}:{await three_(who)}"

    DBOS.launch()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                body = await reader.readexactly(length) if length else b""
                status, out = b"200 OK", b""
                try:
                    result: Any = await three(json.loads(body or b'""'))
                    out = json.dumps(result).encode()
                except Exception as e:  # noqa: BLE001 - reported to the client as a 500
                    status, out = b"500 Internal Server Error", repr(e).encode()
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(out)).encode() + b"\r\n\r\n" + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(serve())
    finally:
        DBOS.destroy()


if __name__ == "__main__":
    main()
