"""The `nb` command: `nb mcp` serves the tools; the rest are operator tools around it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence

from nb_mcp.ops.stop_signals import ignore_stop_signals
from nb_mcp.supervisor.config import Config, ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nb", description="A supervised Jupyter notebook server for AI agents, over MCP."
    )
    parser.add_argument("--version", action="version", version=f"nb {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mcp = commands.add_parser(
        "mcp", help="the MCP server on stdio (what an MCP client runs): a front to the daemon"
    )
    mcp.add_argument(
        "--in-process",
        action="store_true",
        help="run the tree in this process: kernels die with the client (no daemon)",
    )
    serve = commands.add_parser("serve", help="run the per-user daemon in the foreground")
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        default=None,
        help="also serve the tools over MCP streamable HTTP (bearer token from the state dir)",
    )
    serve.add_argument(
        "--no-token", action="store_true", help="with --http on loopback only: no token"
    )
    commands.add_parser("stop", help="stop the daemon (running jobs are interrupted and marked)")
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
        "serve": _serve,
        "stop": _stop,
    }[args.command]
    try:
        config = Config.from_env()
    except ConfigError as error:
        if args.command == "mcp":  # an MCP client shows an answer, not a server that died
            from nb_mcp.mcp_front.relay import refuse_client

            return refuse_client(f"nb mcp: {error}")
        print(f"nb: {error}", file=sys.stderr)
        return 2
    try:
        return handler(args, config)
    except BrokenPipeError:  # `nb status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _mcp(args: argparse.Namespace, config: Config) -> int:
    if not args.in_process:
        from nb_mcp.mcp_front.relay import run_front

        return run_front(config)
    import anyio
    from nb_mcp.mcp_front.server import serve_stdio
    from nb_mcp.supervisor.facade import Facade

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
        ignore_stop_signals()
        facade.stop(reason)
    return 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    from nb_mcp.ops.daemon import serve

    _ignore_file_size_signal()
    _quiet_library_logs()
    return serve(config, args.http, args.no_token)


def _stop(args: argparse.Namespace, config: Config) -> int:
    from nb_mcp.ops.status import stop_daemon

    return stop_daemon(config.state_dir, sys.stdout)


def _run(args: argparse.Namespace, config: Config) -> int:
    from nb_mcp.ops.stop_signals import StopSignals, die_by

    # Before anything that starts threads or kernels: from here on a signal is only counted.
    signals = StopSignals.install()
    from nb_mcp.ops.run import run

    _ignore_file_size_signal()
    _quiet_library_logs()
    status = run(args.notebook, args.timeout, args.kernel, config, signals)
    received = signals.received
    return status if received is None else die_by(received)


def _watch(args: argparse.Namespace, config: Config) -> int:
    from nb_mcp.ops.watch import watch

    try:
        return watch(args.job, args.path, args.format, args.log, roots=config.roots)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _status(args: argparse.Namespace, config: Config) -> int:
    from nb_mcp.ops.status import print_status

    return print_status(config.state_dir, sys.stdout, as_json=args.json)


def _cleanup(args: argparse.Namespace, config: Config) -> int:
    from nb_mcp.ops.status import cleanup

    return cleanup(config.state_dir, sys.stdout, dry_run=args.dry_run)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nb-mcp")  # one source: pyproject.toml, as the facade's VERSION
    except PackageNotFoundError:
        return "unknown (not installed)"


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
