"""The bundled front service: calls a dependency with a timeout, retries and a circuit breaker,
so experiments can show each resilience pattern holding (or, switched off, failing).

    GET /health   200 "ok" (never calls the dependency)
    GET /         calls GET / on --dependency: 200 with its body, or 503 when every attempt
                  failed, timed out, or the breaker is open (fail fast)
    GET /breaker  200 {"state": "closed" | "open" | "half-open", "opened": N}
    GET /metrics  Prometheus text: answers by status, the breaker's state, and the dependency's
                  refused TLS certificates by reason (expired, not_yet_valid,
                  hostname_mismatch, untrusted, other; each present from the start at 0, so
                  `increase()` sees the first one)

With --fallback BODY the front degrades gracefully instead: where it would answer 503 it answers
200 with {"fallback": BODY, "why": ...} (a cached or default answer in a real service), and
counts those answers in /breaker ("fallbacks": N).

Each attempt has --timeout; a failed attempt (timeout, connection error, 5xx or 429) is retried
up to --retries times, --backoff apart (doubling). After --breaker-threshold consecutive failed
calls (0: no breaker) the breaker opens: calls fail at once for --breaker-reset seconds, then one
trial call is let through (half-open); its success closes the breaker. HTTP/1.1 keep-alive to
clients; one new connection per attempt to the dependency (HTTPS with --tls-ca, verifying the
certificate: a refused one is a failed attempt whose error says why). Binds 127.0.0.1 by
default.

With --rate-limit 200/s each client (its X-Client header, else its address) gets a token
bucket of that rate holding --burst tokens: past it the front answers 429 at once, without
calling the dependency, so one client's flood is shed while the others are served. On SIGTERM
it prints how many requests it shed (`shed N of M requests with 429`).

    python -m chaos.demo.front --port 18092 --dependency 127.0.0.1:18091 --retries 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from collections import Counter

from chaos.demo.serving import serve_until_signalled

# OpenSSL's verify codes (X509_V_ERR_*) as the reasons /metrics counts refused certificates by
TLS_REASONS = {10: "expired", 9: "not_yet_valid", 62: "hostname_mismatch", 2: "untrusted",
               18: "untrusted", 19: "untrusted", 20: "untrusted", 21: "untrusted"}


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; a request takes one or is shed."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.last = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Breaker:
    def __init__(self, threshold: int, reset: float) -> None:
        self.threshold, self.reset = threshold, reset
        self.failures, self.opened_at, self.opened, self.trial = 0, 0.0, 0, False

    @property
    def state(self) -> str:
        if not self.threshold or self.failures < self.threshold:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.reset else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "half-open" and not self.trial:
            self.trial = True  # one trial call at a time
            return True
        return state == "closed"

    def record(self, ok: bool) -> None:
        self.trial = False
        if ok:
            if self.threshold and self.failures >= self.threshold:
                print("breaker closed", flush=True)  # the service log shows each transition
            self.failures = 0
            return
        self.failures += 1
        if self.threshold and self.failures >= self.threshold:
            if self.failures == self.threshold:
                self.opened += 1
                print(f"breaker opened after {self.threshold} failed calls", flush=True)
            self.opened_at = time.monotonic()


class Front:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        host, _, port = args.dependency.rpartition(":")
        self.dependency = (host or "127.0.0.1", int(port))
        self.breaker = Breaker(args.breaker_threshold, args.breaker_reset)
        self.fallbacks = 0
        self.answered: Counter[int] = Counter()
        self.tls_refused: Counter[str] = Counter(dict.fromkeys(
            [*sorted(set(TLS_REASONS.values())), "other"], 0))
        self.buckets: dict[str, TokenBucket] = {}
        # --tls-ca: HTTPS to the dependency, verifying its certificate against that CA
        self.tls = ssl.create_default_context(cafile=args.tls_ca) if args.tls_ca else None

    async def answer(self) -> tuple[int, bytes]:
        status, body = await self.call()
        if status == 503 and self.args.fallback:  # "" (a --var left empty): no fallback
            self.fallbacks += 1
            why = json.loads(body).get("error", "")
            return 200, json.dumps({"fallback": self.args.fallback, "why": why}).encode()
        return status, body

    async def attempt(self) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(*self.dependency, ssl=self.tls)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: dependency\r\nConnection: close\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                           if line.startswith(b"content-length:")), None)
            body = await (reader.readexactly(length) if length is not None else reader.read())
            return status, body
        finally:
            writer.close()

    async def call(self) -> tuple[int, bytes]:
        if not self.breaker.allow():
            return 503, b'{"error": "circuit breaker open"}'
        backoff, last = self.args.backoff, "no attempt"
        for attempt in range(self.args.retries + 1):
            if attempt:
                await asyncio.sleep(backoff)
                backoff *= 2
            try:
                status, body = await asyncio.wait_for(self.attempt(), self.args.timeout)
            except (OSError, ValueError, IndexError, TimeoutError,
                    asyncio.IncompleteReadError) as exc:
                # a refused certificate says why (`certificate has expired`): the error is seen
                last = type(exc).__name__
                if isinstance(exc, ssl.SSLCertVerificationError):
                    last = f"TLS: {exc.verify_message}"
                    self.tls_refused[TLS_REASONS.get(exc.verify_code, "other")] += 1
                continue
            if status < 500 and status != 429:
                self.breaker.record(True)
                return 200, body
            last = f"status {status}"
        self.breaker.record(False)
        return 503, json.dumps({"error": f"dependency failed: {last}"}).encode()

    def admit(self, client: str) -> bool:
        """Whether the client's bucket has a token (always, without --rate-limit)."""
        if self.args.rate_limit is None:
            return True
        bucket = self.buckets.get(client)
        if bucket is None:
            bucket = self.buckets[client] = TokenBucket(self.args.rate_limit, self.args.burst)
        return bucket.take()

    def metrics(self) -> bytes:
        lines = ["# TYPE chaos_demo_front_responses_total counter",
                 *(f'chaos_demo_front_responses_total{{code="{code}"}} {n}'
                   for code, n in sorted(self.answered.items())),
                 "# TYPE chaos_demo_front_breaker_open gauge",  # open or half-open: 1
                 f"chaos_demo_front_breaker_open {int(self.breaker.state != 'closed')}",
                 "# TYPE chaos_demo_front_breaker_opened_total counter",
                 f"chaos_demo_front_breaker_opened_total {self.breaker.opened}",
                 "# TYPE chaos_demo_front_dependency_tls_refused_total counter",
                 *(f'chaos_demo_front_dependency_tls_refused_total{{reason="{reason}"}} {n}'
                   for reason, n in sorted(self.tls_refused.items()))]
        return ("\n".join(lines) + "\n").encode()

    async def route(self, path: bytes, client: str) -> tuple[int, bytes]:
        if path == b"/health":
            return 200, b'"ok"'
        if path == b"/metrics":
            return 200, self.metrics()
        if path == b"/breaker":
            return 200, json.dumps({"state": self.breaker.state, "opened": self.breaker.opened,
                                    "fallbacks": self.fallbacks}).encode()
        if not self.admit(client):
            return 429, b'{"error": "rate limited"}'
        return await self.answer()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        try:
            while request := await reader.readline():
                client = address
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"x-client":
                        client = value.strip().decode("latin-1")
                path = request.split()[1] if len(request.split()) > 1 else b"/"
                status, body = await self.route(path, client)
                if path not in (b"/health", b"/metrics", b"/breaker"):
                    self.answered[status] += 1
                kind = "text/plain; version=0.0.4" if path == b"/metrics" else "application/json"
                writer.write(f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                             f"Content-Type: {kind}\r\nContent-Length: {len(body)}"
                             "\r\n\r\n".encode() + body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # stopping with calls in flight: Python 3.11 would log each one's traceback
        finally:
            writer.close()


async def serve(args: argparse.Namespace) -> None:
    front = Front(args)
    server = await asyncio.start_server(front.handle, args.host, args.port, reuse_address=True,
                                        backlog=512)
    print(f"chaos demo front listening on http://{args.host}:{args.port}, calling "
          f"{args.dependency}", flush=True)
    await serve_until_signalled(server)
    # the service log says what the limiter shed (0 without one)
    print(f"shed {front.answered[429]} of {sum(front.answered.values())} requests with 429",
          flush=True)


def rate(text: str) -> float | None:
    """`200/s` or `200`: requests a second; "" (a --var left empty): no limit."""
    if not text:
        return None
    value = float(text.removesuffix("/s"))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a rate above 0 like 200/s, not {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.demo.front", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18092)
    parser.add_argument("--dependency", required=True, help="HOST:PORT of the dependency")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per attempt")
    parser.add_argument("--retries", type=int, default=0, help="extra attempts after a failure")
    parser.add_argument("--backoff", type=float, default=0.0, help="first pause between attempts")
    parser.add_argument("--breaker-threshold", type=int, default=0,
                        help="consecutive failed calls that open the breaker (0: no breaker)")
    parser.add_argument("--breaker-reset", type=float, default=1.0,
                        help="seconds the breaker stays open before a trial call")
    parser.add_argument("--tls-ca", default=None,
                        help="call the dependency over HTTPS, trusting this CA (PEM file)")
    parser.add_argument("--fallback", default=None,
                        help="answer 200 with this fallback instead of 503 (degrade gracefully)")
    parser.add_argument("--rate-limit", type=rate, default=None, metavar="RATE",
                        help="requests a second each client may send, e.g. 200/s; past it: 429")
    parser.add_argument("--burst", type=float, default=None,
                        help="requests a client may send at once (default: a tenth of a "
                             "second's worth, at least 1)")
    args = parser.parse_args(argv)
    if args.rate_limit is not None and args.burst is None:
        args.burst = max(1.0, args.rate_limit / 10)
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
