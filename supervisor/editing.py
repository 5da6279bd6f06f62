"""The facade's read and edit tools: each one ask to the notebook's writer (plus its notices)."""

from __future__ import annotations

import contextlib
from typing import Any

from nb_mcp.actors import notebook as nb
from nb_mcp.actors.writer import EditResult
from nb_mcp.supervisor import kernels, views
from nb_mcp.supervisor.kernel_calls import KernelCalls
from nb_mcp.supervisor.opened import OpenNotebooks, ask, guard, notices
from nb_mcp.supervisor.paths import Scope
from nb_mcp.supervisor.results import CellRead, Edited, Listing, NbError


class Editing:
    def __init__(self, notebooks: OpenNotebooks, kernel_calls: KernelCalls) -> None:
        self._notebooks = notebooks
        self._kernels = kernel_calls

    def list_cells(self, path: str, scope: Scope | None = None) -> Listing:
        notebook, writer, _ = self._notebooks.open(path, scope)
        cells = ask(writer.query(views.summaries))
        return Listing(notebook.path, cells, notices(writer))

    def read_cell(
        self, path: str, index: int | None, cell_id: str | None, scope: Scope | None = None
    ) -> CellRead:
        notebook, writer, _ = self._notebooks.open(path, scope)

        def read(doc: Any) -> tuple[views.CellView, int]:
            return views.view(doc, nb.locate(doc, index, cell_id)), len(doc.cells)

        cell, total = ask(writer.query(read))
        return CellRead(notebook.path, cell, total, notices(writer))

    def insert_cell(
        self,
        path: str,
        cell_type: str,
        source: str,
        index: int | None = None,
        after_cell_id: str | None = None,
        scope: Scope | None = None,
    ) -> Edited:
        if index is not None and after_cell_id is not None:
            raise NbError("give either index or after_cell_id, not both")
        cell = guard(lambda: nb.make_cell(cell_type, source))
        op = nb.InsertCell(cell=cell, index=index, after_id=after_cell_id)
        edited = self.edit(path, op, create=True, scope=scope)
        if edited.created:  # it says at once which kernel it gets: so do JupyterLab and VS Code
            with contextlib.suppress(NbError):
                decision = self._kernels.decide(edited.path, scope, None, kernels.KernelMetadata())
                self._kernels.remember(self._notebooks.subtree(edited.path).writer(), decision)
        return edited

    def set_cell(
        self,
        path: str,
        index: int | None,
        cell_id: str | None,
        source: str | None,
        cell_type: str | None,
        scope: Scope | None = None,
    ) -> Edited:
        if source is None and cell_type is None:
            raise NbError("nothing to change: give source, cell_type, or both")
        op = nb.SetCell(index=index, cell_id=cell_id, source=source, cell_type=cell_type)
        return self.edit(path, op, scope=scope)

    def delete_cell(
        self, path: str, index: int | None, cell_id: str | None, scope: Scope | None = None
    ) -> Edited:
        return self.edit(path, nb.DeleteCell(index=index, cell_id=cell_id), scope=scope)

    def move_cell(
        self, path: str, index: int | None, cell_id: str | None, to: int, scope: Scope | None = None
    ) -> Edited:
        return self.edit(path, nb.MoveCell(index=index, cell_id=cell_id, to=to), scope=scope)

    def clear_outputs(
        self,
        path: str,
        index: int | None = None,
        cell_id: str | None = None,
        all_cells: bool = False,
        scope: Scope | None = None,
    ) -> Edited:
        if all_cells and (index is not None or cell_id is not None):
            raise NbError("give all=true or a cell (index or cell_id), not both")
        if not all_cells and index is None and cell_id is None:
            raise NbError("give a cell (index or cell_id), or all=true to clear every cell")
        op = nb.ClearOutputs(index=index, cell_id=cell_id, every_cell=all_cells)
        return self.edit(path, op, scope=scope)

    def edit(
        self, path: str, op: nb.Op, create: bool = False, scope: Scope | None = None
    ) -> Edited:
        notebook, writer, _ = self._notebooks.open(path, scope, create=create)
        result: EditResult = ask(writer.edit(op, create))
        total = ask(writer.query(lambda doc: len(doc.cells)))
        return Edited(
            path=notebook.path,
            op=op.name,
            index=result.index,
            cell_id=result.cell_id,
            total=total,
            written=result.written,
            write_error=result.write_error,
            created=result.created,
            detail=result.detail,
            notices=notices(writer),
        )
