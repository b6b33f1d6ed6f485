"""``tiktok-gateway inspect``: the TikTok request bodies for one hit, without sending."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tiktok_gateway.cli.common import CONFIG_OPTION, config_or_fail, fail
from tiktok_gateway.config import Config
from tiktok_gateway.tags.tiktok.inspection import InspectInput, InspectReport, run_inspect


def _read(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


@click.command("inspect")
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
@CONFIG_OPTION
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
        fail("give either --mp or --events, not both")
    if not (hit or body_file or mp_file or events_file):
        fail("give a GA4 HIT (URL or query string, - for stdin), --mp FILE or --events FILE")
    if hit == "-":
        hit = sys.stdin.read().strip()
    cookie_map: dict[str, str] = {}
    for pair in cookies:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--cookie takes NAME=VALUE, got {pair!r}")
        cookie_map[name.strip()] = value.strip()
    config = config_or_fail(config_path)
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
        fail(report.fatal)
    bodies = report.bodies
    click.echo(json.dumps(bodies[0] if len(bodies) == 1 else bodies, indent=2, ensure_ascii=False))
    if report.errors:
        fail("; ".join(report.errors))
