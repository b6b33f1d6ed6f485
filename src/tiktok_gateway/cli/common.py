"""What every command shares: failing with exit code 2 and loading the configuration."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import click

from tiktok_gateway.config import Config, load_config
from tiktok_gateway.errors import ConfigError

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="TOML configuration file (environment variables win over it).",
)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line reason and exit with ``code`` (2: bad usage or input)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def config_or_fail(path: Path | None, overrides: Mapping[str, str] | None = None) -> Config:
    """The validated configuration; ``GATEWAY_*`` ``overrides`` come from command-line options."""
    environ = {**os.environ, **(overrides or {})}
    try:
        return load_config(path, environ)
    except ConfigError as exc:
        fail(f"configuration: {exc}")
