"""A loopback HTTP/1.1 keep-alive server that logs every request it reads, for HTTP fault tests.

Run as a process: `python -m tests.support.http_upstream LOG`; it prints its port, then appends
`METHOD PATH BODY_BYTES` to LOG (flushed) for every request. `GET /chunked` answers a chunked
body of three chunks (`one`, `two`, `three`); any other request `200 ok METHOD PATH`, echoing
the request body's length. Request bodies may be chunked or have a Content-Length.
"""

from __future__ import annotations

import asyncio
import sys


async def read_body(reader: asyncio.StreamReader, head: bytes) -> int:
    lines = head.lower().split(b"\r\n")
    if any(line.startswith(b"transfer-encoding:") and b"chunked" in line for line in lines):
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return total
            total += len(await reader.readexactly(size + 2)) - 2
    length = next((int(line.split(b":")[1]) for line in lines
                   if line.startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    return length


async def main(log_path: str) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the server's lifetime

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path = head.split(b" ")[:2]
                size = await read_body(reader, head)
                log.write(f"{method.decode()} {path.decode()} {size}\n")
                if path == b"/chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n")
                else:
                    body = b"ok %s %s %d" % (method, path, size)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
