"""A notebook's kernel for a session: deciding it, remembering it, listing what there is.

The rules are actors/environment.py's; this is where the facade applies them to a session (its
roots, environment and settings) and to the kernel already running, and turns them into a
`KernelLaunch` for the kernel actors and a metadata edit for the WriterActor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nb_mcp.actors import notebook as nb
from nb_mcp.actors.backend import check_kernel_name, installed_kernelspecs
from nb_mcp.actors.environment import KernelChoice, KernelMetadata, choose, metadata_for
from nb_mcp.actors.kernel_protocol import KernelInfo
from nb_mcp.actors.launch import KernelLaunch, launch_problem
from nb_mcp.supervisor import gateways
from nb_mcp.supervisor.session import Session


class KernelRefused(ValueError):
    """The kernel asked for cannot be used; the message is for the agent."""


class KernelspecMissing(KernelRefused):
    """No kernelspec has the name asked for; the message lists the installed ones."""


@dataclass(frozen=True)
class Decision:
    launch: KernelLaunch
    remember: bool  # the notebook's metadata does not say this choice yet: write it
    # Set when the kernel that will run the cells is not the one this session would choose:
    # code running in another environment than the agent expects is worth a line in the reply.
    notice: str = ""


def read_metadata(doc: Any) -> KernelMetadata:
    """A writer query: what the notebook's metadata says about its kernel."""
    return KernelMetadata.of(doc.get("metadata", {}))


def running(info: KernelInfo | None) -> bool:
    return info is not None and info.state not in ("none", "dead")


def decide(
    session: Session,
    notebook: Path,
    requested: str | None,
    metadata: KernelMetadata,
    current: KernelInfo | None,
) -> Decision:
    """The launch for `session` on `notebook`; raise KernelRefused if it cannot be had.

    A kernel already running stays, whatever this session would choose (its environment is
    the one it was started with), unless the call names another kernel: then the agent is told
    to restart it. So a session whose environment differs uses the running kernel as it is.
    The choice is to be remembered when a kernel will start with it (none runs) and the
    metadata does not say it yet: never while a kernel runs, so a front-end that rewrites the
    metadata does not get a write per execution back.
    """
    try:
        choice = _choose(session, notebook, requested, metadata)
    except KernelRefused:
        raise
    except ValueError as error:  # ChoiceError
        raise KernelRefused(str(error)) from None
    launch = KernelLaunch(
        choice, session.env, session.id, session.settings.kernel_start_timeout_sec
    )
    if current is not None and running(current):
        if requested and current.kernel_name != choice.label:
            raise KernelRefused(
                f"{notebook.name} runs a {current.kernel_name!r} kernel; to use "
                f"{choice.label!r}, call restart_kernel with kernel_name={requested!r} first"
            )
        return Decision(
            launch, remember=False, notice=_elsewhere(notebook, current, choice, session)
        )
    return Decision(launch, remember=not metadata.matches(choice), notice=choice.hint)


def _choose(
    session: Session, notebook: Path, requested: str | None, metadata: KernelMetadata
) -> KernelChoice:
    """The session's gateway's kernelspec (gateways.py's rules), else environment.py's."""
    try:
        gateway = gateways.settings_of(session.env)
        if gateway is not None:
            gateways.warn_if_plain_text(gateway, session.id, notebook)
            return gateways.choose(gateway, requested, metadata)
    except gateways.GatewayRefused as error:
        if error.missing_kernelspec:
            raise KernelspecMissing(str(error)) from None
        raise KernelRefused(str(error)) from None
    return described(choose(requested, metadata, notebook, session.roots, session.env, session.cwd))


def _elsewhere(notebook: Path, current: KernelInfo, choice: KernelChoice, session: Session) -> str:
    """What to tell a session whose cells run in a kernel it would not have chosen."""
    whose = "another session" if current.session_id != session.id else "an earlier call"
    wanted = _gateway_url(session)
    # (While a kernel starts or restarts its gateway and id are not known yet.)
    if current.gateway_url != wanted and current.state != "starting":
        running_on = f"the gateway at {current.gateway_url}" if current.gateway_url else "here"
        would = f"the gateway at {wanted}" if wanted else "this machine"
        return (
            f"{notebook.name}'s kernel runs on {running_on} (started by {whose}); this session "
            f"would start it on {would}: call restart_kernel to switch (the kernel's variables "
            "are lost)"
        )
    if current.kernel_name == choice.label:
        return ""
    return (
        f"{notebook.name}'s kernel runs in {current.kernel_name} (started by {whose}); this "
        f"session would start {choice.describe()}: call restart_kernel to switch to it (the "
        "kernel's variables are lost)"
    )


def _gateway_url(session: Session) -> str | None:
    try:
        gateway = gateways.settings_of(session.env)
    except gateways.GatewayRefused:
        return None
    return gateway.url if gateway is not None else None


def described(choice: KernelChoice) -> KernelChoice:
    """A kernelspec choice with the spec's display name and language (and known to exist)."""
    if choice.kernelspec is None:
        return choice
    try:
        display_name, language = check_kernel_name(choice.kernelspec)
    except Exception as error:  # KernelStartError: no such kernelspec
        raise KernelspecMissing(str(error)) from None
    return replace(choice, display_name=display_name, language=language or choice.language)


def remembering(choice: KernelChoice) -> nb.SetKernel:
    """The metadata edit that records `choice` for Jupyter front-ends and the next daemon."""
    kernelspec, ours = metadata_for(choice)
    return nb.SetKernel(kernelspec=kernelspec, ours=ours)


@dataclass(frozen=True)
class KernelListing:
    """What list_kernels shows: kernelspecs, what a notebook would get, what runs."""

    kernelspecs: dict[str, tuple[str, str, str]]
    notebook: Path | None  # None: a new notebook in the session's folder
    folder: Path
    choice: KernelChoice | None
    problem: str | None  # why that choice cannot start now (e.g. no ipykernel), or why none
    kernels: list[tuple[Path, KernelInfo]]
    session_id: str
    gateway_url: str | None = None  # the session's kernels run on this gateway


def listing(
    session: Session,
    notebook: Path | None,
    metadata: KernelMetadata,
    kernels: list[tuple[Path, KernelInfo]],
) -> KernelListing:
    where = notebook if notebook is not None else session.cwd / "Untitled.ipynb"
    choice: KernelChoice | None = None
    specs: dict[str, tuple[str, str, str]] = {}
    gateway = None
    try:
        gateway = gateways.settings_of(session.env)
        if gateway is not None:
            specs = gateways.listed(gateway, gateways.kernelspecs(gateway))
        else:
            specs = installed_kernelspecs()
        choice = _choose(session, where, None, metadata)
        problem = launch_problem(choice)
    except (KernelRefused, ValueError) as error:
        problem = str(error)
    return KernelListing(
        kernelspecs=specs,
        notebook=notebook,
        folder=where.parent,
        choice=choice,
        problem=problem,
        kernels=kernels,
        session_id=session.id,
        gateway_url=gateway.url if gateway is not None else None,
    )
