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
    run = commands.add_parser("run", help="run a whole notebook headless, outputs into the file")
    run.add_argument("notebook", help="path of the .ipynb file")
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="wall-clock limit per cell in seconds (0: none; default 600)",
    )
    run.add_argument("--kernel", default=None, help="kernelspec name (default: from the notebook)")
    watch = commands.add_parser("watch", help="print a job's events until it ends")
    watch.add_argument("--job", required=True, help="the job id (j-…)")
    watch.add_argument("--path", default=None, help="the notebook the job runs on")
    watch.add_argument("--format", choices=("json", "text"), default="json")
    watch.add_argument("--log", default=None, help="the event log (default: found from the job)")
    status = commands.add_parser("status", help="servers, kernels and active jobs on this machine")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    cleanup = commands.add_parser("cleanup", help="stop kernels left behind by a killed server")
    cleanup.add_argument("--dry-run", action="store_true", help="only say what would be done")
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace, Config], int] = {
        "mcp": _mcp,
        "run": _run,
        "watch": _watch,
        "status": _status,
        "cleanup": _cleanup,
    }[args.command]
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


def _run(args: argparse.Namespace, config: Config) -> int:
    from ops.run import run

    _ignore_file_size_signal()
    _quiet_library_logs()
    return run(args.notebook, args.timeout, args.kernel, config)


def _watch(args: argparse.Namespace, config: Config) -> int:
    from ops.watch import watch

    try:
        return watch(args.job, args.path, args.format, args.log, roots=config.roots)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _status(args: argparse.Namespace, config: Config) -> int:
    from ops.status import print_status

    return print_status(config.state_dir, sys.stdout, as_json=args.json)


def _cleanup(args: argparse.Namespace, config: Config) -> int:
    from ops.status import cleanup

    return cleanup(config.state_dir, sys.stdout, dry_run=args.dry_run)


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
