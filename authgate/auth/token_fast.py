"""`TokenFastPath`: plain ASGI in front of the app, answering a `/token` request from memory when the
same request was answered a moment ago (`authgate.auth.token_answers` says when that is allowed).

It sits before every middleware and the router, and builds no request object: it reads the few
headers it needs from the scope, keys the request, and either sends the stored answer or passes the
request on untouched (a POST's form, read here to key it, is handed on as it came). What the
middleware would have added to an answer, it adds itself: the `X-Request-ID` header and the audit
rows' request id (`RequestIdMiddleware`'s rule: a trusted proxy's well-formed id, else a random
one), and the request counted in `/metrics` as `MetricsMiddleware` would have counted it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.audit.context import choose_request_id, forwarded_address, trusted_peer
from authgate.auth.token_answers import PENDING, TokenAnswers

#: A refresh grant's form is a few hundred bytes; larger ones (or chunked) take the full path.
MAX_FORM = 4096
#: A form not arrived within this goes to the full path, which gives it the rest of its 10 s.
FORM_WAIT = 1.0
_FORM = b"application/x-www-form-urlencoded"

#: `Metrics.answered`: (method, route kind, bytes in, bytes out, seconds) of a 200.
Count = Callable[[str, str, int, int, float], None]


class TokenFastPath:
    def __init__(self, app: ASGIApp, answers: TokenAnswers, count: Count,
                 trusted_proxies: tuple[str, ...] = ()) -> None:
        self.app = app
        self.answers = answers
        self.count = count
        self.trusted = tuple(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/token" or not self.answers.running:
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        method = scope["method"]
        authorization = agent = incoming = content_type = None
        length = -1
        forwarded: list[str] = []
        for name, value in scope["headers"]:  # the first of each, as starlette's `headers.get` reads them
            if name == b"authorization":
                authorization = value if authorization is None else authorization
            elif name == b"user-agent":
                agent = value if agent is None else agent
            elif name == b"content-type":
                content_type = value if content_type is None else content_type
            elif name == b"content-length":
                length = int(value) if value.isdigit() and length < 0 else length
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == b"x-request-id":
                incoming = value if incoming is None else incoming
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        address = forwarded_address(peer, forwarded, self.trusted) if peer is not None and self.trusted else peer
        taken: list[Message] = []
        if method == "GET" and authorization is not None:
            what = authorization
        elif (method == "POST" and content_type is not None and 0 <= length <= MAX_FORM
              and content_type.split(b";")[0].strip().lower() == _FORM):
            form = await _read_form(receive, taken)
            if form is None:
                await self.app(scope, _replay(taken, receive), send)
                return
            what = form
        else:
            await self.app(scope, receive, send)
            return
        where = (address or "").encode()
        query: bytes = scope["query_string"]
        key = self.answers.key(b"%d %d %d %s\0%s\0%s\0%s" % (len(query), len(what), len(where), method.encode(),
                                                              query, what, where))

        def request_id() -> str:
            trusted = incoming is not None and peer is not None and trusted_peer(peer, self.trusted)
            return choose_request_id(incoming.decode("latin-1") if trusted and incoming is not None else None)

        found = await self.answers.answer(key, address, agent, request_id)
        if found is None:
            scope[PENDING] = self.answers.pending(key)
            await self.app(scope, _replay(taken, receive) if taken else receive, send)
            return
        body, rid = found
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"cache-control", b"no-store"), (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"), (b"x-request-id", rid.encode())]})
        await send({"type": "http.response.body", "body": body})
        self.count(method, "token", len(what) if taken else 0, len(body), perf_counter() - started)


async def _read_form(receive: Receive, taken: list[Message]) -> bytes | None:
    """The whole form if it comes within `FORM_WAIT` and `MAX_FORM` bytes, else None; every message
    read is in `taken`, to be handed on."""
    form = b""
    try:
        async with asyncio.timeout(FORM_WAIT):
            while True:
                message = await receive()
                taken.append(message)
                if message["type"] != "http.request":
                    return None
                form += bytes(message.get("body", b""))
                if len(form) > MAX_FORM:
                    return None
                if not message.get("more_body", False):
                    return form
    except TimeoutError:
        return None


def _replay(taken: list[Message], receive: Receive) -> Receive:
    """`receive` as if nothing had been read: the messages taken come first."""
    queue = list(taken)

    async def again() -> Message:
        return queue.pop(0) if queue else await receive()

    return again
