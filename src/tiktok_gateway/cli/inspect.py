"""The ``tiktok-gateway`` command line (SPEC 10.3).

Exit codes: 0 success, 2 bad usage or bad input (with a one-line reason on stderr).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tiktok_gateway import __version__
from tiktok_gateway.config import Config, load_config
from tiktok_gateway.errors import ConfigError
from tiktok_gateway.inspection import InspectInput, InspectReport, run_inspect


def _fail(message: str) -> None:
    """Print a one-line reason and exit with code 2 (click's convention for usage errors)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _config(path: Path | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(f"configuration: {exc}")
        raise AssertionError("unreachable") from exc


def _read(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}")
        raise AssertionError("unreachable") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tiktok-gateway")
def main() -> None:
    """Server-side gateway: GA4 hits in, TikTok Events API 2.0 events out."""


@main.command("inspect")
@click.argument("hit", required=False)
@click.option(
    "--body",
    "body_file",
    type=click.Path(path_type=Path),
    help="POST body lines of a batched GA4 hit (- for stdin).",
)
@click.option(
    "--mp", "mp_file", type=click.Path(path_type=Path), help="A Measurement Protocol JSON body."
)
@click.option(
    "--events",
    "events_file",
    type=click.Path(path_type=Path),
    help="Generic JSON event data (one object or a list).",
)
@click.option(
    "--cookie",
    "cookies",
    multiple=True,
    metavar="NAME=VALUE",
    help="A request cookie (ttclid, _ttp); repeatable.",
)
@click.option("--user-agent", help="The request's User-Agent header.")
@click.option("--ip", help="The client address (the gateway takes it from the connection).")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="TOML configuration file."
)
@click.option("--explain", is_flag=True, help="Also show, on stderr, where each field came from.")
def inspect_command(
    hit: str | None,
    body_file: Path | None,
    mp_file: Path | None,
    events_file: Path | None,
    cookies: tuple[str, ...],
    user_agent: str | None,
    ip: str | None,
    config_path: Path | None,
    explain: bool,
) -> None:
    """Show the TikTok request body (or bodies) the gateway would send for HIT, without sending.

    HIT is a GA4 hit as a full URL (copied from the browser's network tab) or its query string;
    - reads it from stdin. With --mp or --events, HIT may carry the URL's query
    (measurement_id=...). Events dropped by a tag's policy are listed on stderr with the reason.
    """
    if mp_file and events_file:
        _fail("give either --mp or --events, not both")
    if not (hit or body_file or mp_file or events_file):
        _fail("give a GA4 HIT (URL or query string, - for stdin), --mp FILE or --events FILE")
    if hit == "-":
        hit = sys.stdin.read().strip()
    cookie_map: dict[str, str] = {}
    for pair in cookies:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            _fail(f"--cookie takes NAME=VALUE, got {pair!r}")
        cookie_map[name.strip()] = value.strip()
    config = _config(config_path)
    request = InspectInput(
        hit=hit or "",
        body=_read(body_file) if body_file else b"",
        mp=_read(mp_file) if mp_file else None,
        events=_read(events_file) if events_file else None,
        cookies=cookie_map,
        user_agent=user_agent,
        ip=ip,
    )
    report = run_inspect(request, config, explain=explain)
    _print_report(report, config, explain)


def _print_report(report: InspectReport, config: Config, explain: bool) -> None:
    if config.placeholder_pixel:
        click.echo("note: TIKTOK_PIXEL_CODE is not set; using a placeholder pixel code", err=True)
    for line in report.notes:
        click.echo(line, err=True)
    if explain:
        for line in report.explanations:
            click.echo(line, err=True)
    if report.fatal:
        _fail(report.fatal)
    bodies = report.bodies
    click.echo(json.dumps(bodies[0] if len(bodies) == 1 else bodies, indent=2, ensure_ascii=False))
    if report.errors:
        _fail("; ".join(report.errors))
