"""The `nb` command: `nb mcp` serves the tools; the rest are operator tools around it."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from supervisor.config import Config, ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nb", description="A supervised Jupyter notebook server for AI agents, over MCP."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("mcp", help="serve the MCP tools on stdio (what an MCP client runs)")
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace, Config], int] = {"mcp": _mcp}[args.command]
    try:
        config = Config.from_env()
    except ConfigError as error:
        print(f"nb: {error}", file=sys.stderr)
        return 2
    return handler(args, config)


def _mcp(args: argparse.Namespace, config: Config) -> int:
    import anyio

    from mcp_front.server import serve_stdio
    from supervisor.facade import Facade

    _ignore_file_size_signal()
    _quiet_library_logs()
    facade = Facade(config, mode="mcp")
    facade.start()
    reason = "crashed"
    try:
        reason = anyio.run(serve_stdio, facade)
    except BaseException as error:
        facade.report_unhandled(error, "nb mcp")
        raise
    finally:
        facade.stop(reason)
    return 0


def _quiet_library_logs() -> None:
    # pykka logs every failed ask at INFO with a traceback; those are refused tool calls,
    # already answered and in the event log. Real actor crashes are still logged (ERROR).
    import logging

    logging.getLogger("pykka").setLevel(logging.WARNING)


def _ignore_file_size_signal() -> None:
    # With RLIMIT_FSIZE reached, a write raises EFBIG instead of killing the server, so the
    # writer can keep the notebook in memory and report it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
