"""list_kernels: which kernels there are, which one a notebook would get and why, what runs."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from nb_mcp.mcp_front.registry import Tools
from nb_mcp.supervisor.kernels import KernelListing
from pydantic import Field


def register(tools: Tools) -> None:
    facade, run = tools.facade, tools.run

    @tools.tool
    async def list_kernels(
        ctx: Context,
        path: Annotated[
            str | None,
            Field(
                description="A notebook (it need not exist yet); default: a new notebook in "
                "the server's folder"
            ),
        ] = None,
    ) -> str:
        """The kernelspecs installed, the Python environment nb would run this notebook in
        (and which rule chose it), and the running kernels under this session's roots; one
        line each."""
        return listing_text(await run(facade.list_kernels, path, await tools.scope(ctx)))


def listing_text(listing: KernelListing) -> str:
    what = str(listing.notebook) if listing.notebook else f"a new notebook in {listing.folder}"
    choice = listing.choice
    lines = [f"For {what}:"]
    if choice is not None:
        lines.append(f"  nb would run it in {choice.describe()}: {choice.rule}")
        if choice.hint:
            lines.append(f"  ⚠ {choice.hint}")
    if listing.problem:
        lines.append(f"  ⚠ {listing.problem}")
    if listing.gateway_url:
        lines.append(
            f"Kernelspecs of the gateway at {listing.gateway_url}, where this session's kernels "
            "run (JUPYTER_GATEWAY_URL; pass one as kernel_name):"
        )
    else:
        lines.append(
            "Kernelspecs (pass one as kernel_name; a Python environment's folder works too):"
        )
    for name, (display_name, language, folder) in listing.kernelspecs.items():
        lines.append(f"  {name} · {display_name} · {language or '?'} · {folder}")
    if not listing.kernelspecs:
        lines.append("  (none found)")
    lines.append("Running kernels under this session's roots:")
    for notebook, info in listing.kernels:
        whose = "this session" if info.session_id == listing.session_id else "another session"
        if info.reattached or not info.session_id:
            whose = "taken over from an earlier daemon" if info.reattached else "-"
        where = f"pid {info.pid or '-'}"
        if info.gateway_url:
            where = f"kernel {info.kernel_id} on {info.gateway_url}"
        lines.append(
            f"  {notebook} · {info.kernel_name or '-'} · {where} · {info.state}"
            f" · started by {whose}"
        )
    if not listing.kernels:
        lines.append("  (none)")
    return "\n".join(lines)
