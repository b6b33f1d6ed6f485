"""Structured logs: structlog for our own lines, the same formatter for stdlib ``logging``.

``configure_logging`` is called once by ``tiktok-gateway serve`` (``GATEWAY_LOG_FORMAT=json`` or
``console``, ``GATEWAY_LOG_LEVEL``): JSON lines in production, readable key=value lines in a
terminal. Lines from the standard ``logging`` module (the worker, the ledger, uvicorn) go
through structlog's ``ProcessorFormatter`` on the root handler; structlog's own lines (``hit``,
``delivery``) run through the same processors in structlog and are written straight to that
handler's stream, not through ``logging`` (cheaper; other root handlers do not see them). So
every line has the same keys: ``event``, ``level``, ``logger``, ``timestamp`` and its own fields.

Nothing secret or personal is logged on purpose (only counts, ids and stable reasons), and a last
processor scrubs every line anyway (``scrub``): the configured secrets (access tokens, admin and
ingest tokens, Measurement Protocol api secrets) and anything that looks like an e-mail address
(``email_redaction``: any script, also percent-encoded) are masked in every field; in free-text
fields (messages, exceptions) long digit runs (phone numbers) are masked too. Id fields
(``request_id``, ``destination_request_id``) keep their digits.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tiktok_gateway.email_redaction import redact_emails
from tiktok_gateway.telemetry.log_writer import BackgroundWriter

__all__ = [
    "EMAIL_MASK",
    "NUMBER_MASK",
    "SECRET_MASK",
    "configure_from_environment",
    "configure_logging",
    "register_secrets",
    "scrub",
    "scrub_text",
    "write_json_line",
]

SECRET_MASK = "[secret]"
EMAIL_MASK = "[email]"
NUMBER_MASK = "[number]"

# Shorter "secrets" would mask ordinary words; real tokens and api secrets are much longer.
MIN_SECRET_LENGTH = 4

# Seven or more digits, possibly split by spaces, dots, dashes, slashes or parentheses (also
# URL-encoded: %20, %28, ...), with a leading + (or %2B).
_NUMBER = re.compile(
    r"(?:\+|%2B)?(?:\(|%28)?\d(?:(?:[\s().\-/]|%2[0-9A-F]){0,3}\d){6,}", re.IGNORECASE
)

# Fields that hold ids or timestamps: digits are expected there (secrets and e-mails still masked).
_ID_FIELDS = frozenset({"timestamp", "request_id", "destination_request_id", "level", "logger"})

_HANDLER_NAME = "tiktok_gateway"
# Libraries that log every HTTP request at info level (with its URL): warnings only.
QUIET_LOGGERS = ("httpx", "httpcore")

# Every secret the running process knows of (a process may run several apps in tests).
_known_secrets: set[str] = set()
_secret_order: tuple[str, ...] = ()


def _ordered(values: Iterable[str]) -> tuple[str, ...]:
    """Secret values and their URL-encoded forms, longest first (a secret inside another)."""
    variants = set()
    for value in values:
        if len(value) >= MIN_SECRET_LENGTH:
            variants.update({value, quote(value, safe=""), quote(value)})
    return tuple(sorted(variants, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] = (), *, numbers: bool = True) -> str:
    """``text`` with the ``secrets``, e-mail addresses and (``numbers``) phone-like digit runs
    masked as ``[secret]``, ``[email]`` and ``[number]``."""
    return _scrub(text, _ordered(secrets), numbers)


def _scrub(text: str, ordered: tuple[str, ...], numbers: bool) -> str:
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, SECRET_MASK)
    # Addresses as email_redaction finds them: any script, percent-encoded at any depth it
    # looks through, in linear time (the former pattern backtracked: ~60 s for 100 KB).
    text = redact_emails(text, EMAIL_MASK)
    if numbers:
        text = _NUMBER.sub(NUMBER_MASK, text)
    return text


def register_secrets(values: Iterable[str]) -> None:
    """Add secret values every log line is scrubbed of (from now on, in this process)."""
    global _secret_order
    new = {value for value in values if len(value) >= MIN_SECRET_LENGTH}
    if not new <= _known_secrets:
        _known_secrets.update(new)
        _secret_order = _ordered(_known_secrets)
        _clean_texts.clear()  # a new secret may be inside one of them


# Short free-text values that came out of ``_scrub`` unchanged (the hit line's "hit", "ga4",
# "accepted"...): looked up instead of searched again. Only unchanged values are kept, so nothing
# secret or personal is held here. Emptied when a secret is added and when full.
_clean_texts: set[str] = set()
_CLEAN_TEXTS_LIMIT = 4096
_CLEAN_TEXT_LENGTH = 64

# Exact types that hold nothing to scrub (checked before the slower isinstance tests).
_PLAIN_TYPES = frozenset({int, float, bool, type(None)})


def _scrub_text(text: str, numbers: bool) -> str:
    """``_scrub`` with the configured secrets; free text (``numbers``) remembered when clean."""
    if not numbers:  # ids and timestamps: mostly unique, and cheap (no digit-run search)
        return _scrub(text, _secret_order, False)
    if text in _clean_texts:
        return text
    scrubbed = _scrub(text, _secret_order, True)
    if scrubbed == text and len(text) <= _CLEAN_TEXT_LENGTH:
        if len(_clean_texts) >= _CLEAN_TEXTS_LIMIT:
            _clean_texts.clear()
        _clean_texts.add(text)
    return scrubbed


def scrub_text(text: str) -> str:
    """A free-text field as every log line has it: secrets, e-mail addresses and long digit
    runs masked."""
    return _scrub_text(text, True)


def _scrub_value(value: Any, numbers: bool) -> Any:
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if isinstance(value, str):
        return _scrub_text(value, numbers)
    if isinstance(value, Mapping):
        return {key: _scrub_value(item, numbers) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(item, numbers) for item in value]
    return value


def scrub_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The structlog processor that scrubs every field of a line (see the module docstring)."""
    for key, value in event_dict.items():
        kind = type(value)
        if kind is str:  # most fields: straight to the text scrubber
            event_dict[key] = _scrub_text(value, key not in _ID_FIELDS)
        elif kind not in _PLAIN_TYPES:
            event_dict[key] = _scrub_value(value, key not in _ID_FIELDS)
    return event_dict


_FIRST_KEYS = ("timestamp", "level", "logger", "event")

_Stream = TextIO | BackgroundWriter  # what the handler writes to


class _HandlerWriter:
    """What structlog's bound loggers wrap: writes each rendered line through ``handler``.

    structlog lines are rendered by structlog itself, with the processors ``ProcessorFormatter``
    applies to stdlib records, and written here to the handler's stream under the handler's
    lock, as ``StreamHandler.emit`` writes (line, terminator, flush; a failing write goes to
    ``handleError``). So both kinds of line look the same and never interleave, while structlog
    lines skip the stdlib machinery: a ``LogRecord``, the caller lookup, the formatter's copy of
    the record (measured: the ``hit`` line 31 -> 18 us). The stdlib level of the line's logger
    is not consulted: the bound logger filters by the configured level.
    """

    __slots__ = ("_handler", "name")

    def __init__(self, name: str, handler: logging.StreamHandler[_Stream]) -> None:
        self.name = name  # read by add_logger_name
        self._handler = handler

    def msg(self, line: str) -> None:
        handler = self._handler
        handler.acquire()
        try:
            stream = handler.stream
            stream.write(line + handler.terminator)
            stream.flush()
        except RecursionError:  # as StreamHandler.emit: see logging's issue 36272
            raise
        except Exception:
            handler.handleError(logging.makeLogRecord({"name": self.name, "msg": line}))
        finally:
            handler.release()

    # Every level the bound logger may call: its level filter already chose to write the line.
    debug = info = warning = warn = error = exception = critical = fatal = msg


# Writers kept by name per configuration: the gateway has a handful of structlog logger names.
_WRITERS_LIMIT = 256


class _WriterFactory:
    """structlog's logger factory: a ``_HandlerWriter`` named as ``logging.getLogger`` would be
    (the ``get_logger`` argument, else the calling module's name).

    structlog calls it for every line (loggers are not cached, so that configuring again
    applies to them), so a writer per given name is kept: a dict lookup instead of
    ``logging.getLogger`` and a new writer. One factory per ``configure_logging`` call."""

    def __init__(self, handler: logging.StreamHandler[_Stream]) -> None:
        self._handler = handler
        self._names = structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__])
        self._writers: dict[str, _HandlerWriter] = {}

    def __call__(self, *args: Any) -> _HandlerWriter:
        name = args[0] if args else None
        if not isinstance(name, str):  # no name given: the caller's module (not kept)
            return _HandlerWriter(self._names(*args).name, self._handler)
        writer = self._writers.get(name)
        if writer is None:
            writer = _HandlerWriter(self._names(name).name, self._handler)
            if len(self._writers) < _WRITERS_LIMIT:
                self._writers[name] = writer
        return writer


def _leading_keys(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The common keys first, so JSON lines read like log lines."""
    leading = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    leading.update(event_dict)
    return leading


def _json_fallback(value: Any) -> Any:
    """What structlog's ``JSONRenderer`` writes for a value JSON has no type for."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


# One encoder for every line (structlog's JSONRenderer builds one per line through json.dumps);
# it keeps no state between lines. The same settings, so the same text.
_JSON_ENCODER = json.JSONEncoder(default=_json_fallback)


def _render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    return _JSON_ENCODER.encode(event_dict)


# Where write_json_line writes (the handler of the current JSON set-up), from which level, and
# the processors configured with it; None while logging is not configured for JSON lines.
_json_sink: tuple[_HandlerWriter, int, list[Processor]] | None = None


def write_json_line(logger: str, level: int, event: str, fields: Mapping[str, Any]) -> bool:
    """Write one JSON line of ``fields`` made by the gateway itself (ids, counts, reason words,
    configured names: nothing a visitor or an API sent, so nothing to scrub) as structlog would
    render it, without its processor chain (the ``hit`` line: ~40 -> ~8 us): ``fields`` after
    the leading keys, then the bound context variables (``structlog.contextvars``).

    ``False`` when logging is not set up for JSON lines by ``configure_logging`` (the caller
    then logs through structlog, which also renders console lines); ``True`` otherwise,
    written or, below the configured level, not.
    """
    sink = _json_sink
    # structlog configured since by someone else (structlog.testing.capture_logs, say): theirs.
    if sink is None or structlog.get_config()["processors"] is not sink[2]:
        return False
    writer, threshold, _ = sink
    if level >= threshold:
        stamp = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
        name = logging.getLevelName(level).lower()
        line = {"timestamp": stamp, "level": name, "logger": logger, "event": event, **fields}
        for key, value in structlog.contextvars.get_contextvars().items():  # a worker's pid
            line.setdefault(key, value)  # after the fields, as structlog's merge_contextvars
        writer.msg(_JSON_ENCODER.encode(line))
    return True


def _level(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    return number


# The background writer of the current set-up, closed (its lines written) when replaced.
_background: BackgroundWriter | None = None


def configure_logging(
    *,
    json: bool | None = None,
    level: str = "info",
    stream: TextIO | None = None,
    background: bool = False,
) -> None:
    """Send structlog and stdlib ``logging`` lines to ``stream`` (default stderr), one shape.

    ``json``: JSON lines (``True``), console lines (``False``), or JSON unless ``stream`` is a
    terminal (``None``). ``background``: a thread writes the lines (``log_writer.py``: the
    caller never waits for the stream; ``serve`` uses it). Calling it again replaces the
    earlier set-up (and writes out what the earlier background writer still held).
    """
    global _background, _json_sink
    out = stream if stream is not None else sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    as_json = not tty if json is None else json
    number = _level(level)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderers: list[Processor] = (
        [_leading_keys, _render_json]
        if as_json
        else [
            structlog.dev.ConsoleRenderer(
                colors=tty, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    )
    final: list[Processor] = [
        structlog.processors.format_exc_info,  # a string, so it is scrubbed too
        scrub_processor,
        *renderers,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    if _background is not None:
        _background.close()
        _background = None
    if background:
        _background = BackgroundWriter(out)
    handler: logging.StreamHandler[_Stream] = logging.StreamHandler(_background or out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    for name in QUIET_LOGGERS:  # one line per request to TikTok is the delivery line already
        logging.getLogger(name).setLevel(max(number, logging.WARNING))
    processors = [*shared, *final]
    _json_sink = (_HandlerWriter(__name__, handler), number, processors) if as_json else None
    structlog.configure(
        processors=processors,
        logger_factory=_WriterFactory(handler),
        wrapper_class=structlog.make_filtering_bound_logger(number),
        cache_logger_on_first_use=False,
    )


def configure_from_environment(
    environ: Mapping[str, str] | None = None, *, background: bool = True
) -> None:
    """``configure_logging`` to stderr, written by a thread (``background``), from
    ``GATEWAY_LOG_FORMAT`` (``json``, ``console``; unset: JSON unless stderr is a terminal) and
    ``GATEWAY_LOG_LEVEL`` (default ``info``).

    Raises ``ValueError`` naming the variable when a value is not understood."""
    environ = os.environ if environ is None else environ
    fmt = environ.get("GATEWAY_LOG_FORMAT", "").strip().lower()
    formats: dict[str, bool | None] = {"": None, "auto": None, "json": True, "console": False}
    if fmt not in formats:
        raise ValueError("GATEWAY_LOG_FORMAT: use json or console")
    try:
        configure_logging(
            json=formats[fmt],
            level=environ.get("GATEWAY_LOG_LEVEL") or "info",
            background=background,
        )
    except ValueError as exc:
        raise ValueError(f"GATEWAY_LOG_LEVEL: {exc}") from None
