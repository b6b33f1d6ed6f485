"""The ``tiktok-gateway`` command line (SPEC 10.3).

Exit codes: 0 success, 2 bad usage, bad input or bad configuration (with a one-line reason on
stderr). Each command lives in its own module; this one only assembles the group.
"""

from __future__ import annotations

import click

from tiktok_gateway import __version__
from tiktok_gateway.cli.check import check_command
from tiktok_gateway.cli.inspect import inspect_command
from tiktok_gateway.cli.queue import queue_group
from tiktok_gateway.cli.serve import sandbox_command, serve_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tiktok-gateway")
def main() -> None:
    """Server-side gateway: GA4 hits in, TikTok Events API 2.0 events out."""


main.add_command(inspect_command)
main.add_command(serve_command)
main.add_command(sandbox_command)
main.add_command(queue_group)
main.add_command(check_command)
