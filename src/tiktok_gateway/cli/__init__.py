"""The ``tiktok-gateway`` command line (SPEC 10.3).

Exit codes: 0 success, 2 bad usage, bad input or bad configuration (with a one-line reason on
stderr). Each command lives in its own module; this one only assembles the group, and imports a
command's module only when that command runs (or ``--help`` lists them all): ``serve`` then
starts without importing what ``check``, ``inspect`` and ``queue`` alone need (bench/million.py:
``serve``'s start is mostly imports).
"""

from __future__ import annotations

import gc
import importlib

import click

from tiktok_gateway import __version__

# name -> "module:attribute", in the order --help lists them.
COMMANDS = {
    "inspect": "tiktok_gateway.cli.inspect:inspect_command",
    "serve": "tiktok_gateway.cli.serve:serve_command",
    "sandbox": "tiktok_gateway.cli.serve:sandbox_command",
    "queue": "tiktok_gateway.cli.queue:queue_group",
    "check": "tiktok_gateway.cli.check:check_command",
}


class LazyGroup(click.Group):
    """A group whose commands (``COMMANDS``) are imported when looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        # Imports make many objects and little garbage: collecting while they run (every 700
        # allocations) cost ~40 of serve's ~600 ms of imports' CPU, for nothing to free.
        enabled = gc.isenabled()
        gc.disable()
        try:
            command = getattr(importlib.import_module(module), attribute)
        finally:
            if enabled:
                gc.enable()
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tiktok-gateway")
def main() -> None:
    """Server-side gateway: GA4 hits in, TikTok Events API 2.0 events out."""
