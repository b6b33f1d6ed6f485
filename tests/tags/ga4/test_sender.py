"""The aiohttp sender, against a loopback HTTP server: aiohttp is imported by the first post (in
a thread), and posts that start together before it is share one import and one session."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from tiktok_gateway.tags.ga4.sender import AiohttpSender


async def _server(requests: list[bytes]) -> asyncio.Server:
    """Answers every request 204 (keep-alive), recording each head."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                requests.append(head)
                length = next(
                    (int(line[15:]) for line in head.lower().split(b"\r\n")
                     if line.startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_posts_racing_the_first_import_share_one_session() -> None:
    problems: list[dict[str, Any]] = []
    requests: list[bytes] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: problems.append(context)
        )
        server = await _server(requests)
        port = server.sockets[0].getsockname()[1]
        sender = AiohttpSender(connections=4)
        url = f"http://127.0.0.1:{port}/g/collect?v=2&tid=G-1"
        answers = await asyncio.gather(
            *(sender.post(url, [("User-Agent", "UA")], b"", 5.0) for _ in range(10))
        )
        assert [answer.status for answer in answers] == [204] * 10
        assert (await sender.post(url, [], b"x=1", 5.0)).status == 204
        await sender.aclose()
        server.close()
        await server.wait_closed()
        gc.collect()  # a second session, never closed, would be reported as it is collected

    asyncio.run(main())
    assert len(requests) == 11
    assert problems == []
