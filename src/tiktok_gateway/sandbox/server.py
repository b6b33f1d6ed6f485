"""Serving the sandbox on its own (``tiktok-gateway sandbox``) with uvicorn."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette


def sandbox_server_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    """uvicorn settings of the standalone sandbox: uvloop, httptools, warnings only, no websockets.

    Access logs stay off (they come at ``info``); the token travels in a header and is never logged.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


def run_sandbox(host: str, port: int, app: Starlette) -> None:
    """Serve ``app`` until interrupted (Ctrl-C / SIGTERM)."""
    uvicorn.Server(sandbox_server_config(app, host, port)).run()
