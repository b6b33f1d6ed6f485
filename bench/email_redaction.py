"""Cost of taking e-mail addresses out of page URLs (``email_redaction``), per call, on one core.

Kinds of URL: ``plain`` (neither ``@`` nor ``%``: two substring tests), ``escaped`` (utm values
with ``%`` escapes and no address: one decoding pass), ``address`` (a double-encoded address in
the query), each with the memo missed (``redact_emails``, as the first event of a page) and hit
(``redact_url`` again with the same URL, as every further event of that page). Then 100 KB
adversarial texts, to show the time stays linear. Prints the MEDIAN of ``--rounds`` rounds;
compare on one machine only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from statistics import median

from tiktok_gateway.email_redaction import redact_emails, redact_url

URLS = {
    "plain": "https://shop.example.de/p/123?utm_source=tiktok&utm_medium=paid&ttclid=E.C.P.abc",
    "escaped": "https://shop.example.de/suche?q=caf%C3%A9%20cr%C3%A8me&utm_campaign=sommer%202025"
    "&utm_content=video%7C3&ref=%2Fstart%3Fa%3D1",
    "address": "https://shop.example.de/konto?next=%2Fbestellung%3Femail%3Dalice.b%2540example.com"
    "&utm_source=newsletter",
}
ADVERSARIAL = {
    "100KB local part, no domain": "@" + "a" * 100_000,
    "100KB a@ repeated": "a@" * 50_000,
    "100KB %25 chain": "%25" * 33_333 + "40",
}


def per_call(function: Callable[[str], str], text: str, seconds: float) -> float:
    """Median-ready: seconds per call of ``function(text)`` over about ``seconds``."""
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(100):
            function(text)
        calls += 100
    return elapsed / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one measurement")
    args = parser.parse_args()
    for kind, url in URLS.items():
        miss = median(per_call(redact_emails, url, args.seconds) for _ in range(args.rounds))
        redact_url(url)
        hit = median(per_call(redact_url, url, args.seconds) for _ in range(args.rounds))
        print(f"{kind:8} memo miss {miss * 1e6:7.2f} us/call   memo hit {hit * 1e6:6.3f} us/call")
    for name, text in ADVERSARIAL.items():
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            redact_emails(text)
            times.append(time.perf_counter() - started)
        print(f"{name:28} MEDIAN {median(times) * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
