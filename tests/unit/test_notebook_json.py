"""The file composed from per-cell pieces is byte for byte what nbformat writes, whatever the
sequence of edits, and a write re-serialises only the cells that changed."""

from __future__ import annotations

import nbformat
from hypothesis import given, settings
from hypothesis import strategies as st
from nb_mcp.actors import notebook as nb
from nb_mcp.actors.disk_sync import digest
from nb_mcp.actors.notebook_json import FileComposer

TEXT = st.text(alphabet=st.sampled_from('ab é\n\r\t"\\😀{}[],:'), max_size=30)
OUTPUTS = st.lists(
    st.one_of(
        st.builds(
            lambda name, text: nbformat.v4.new_output("stream", name=name, text=text),
            st.sampled_from(["stdout", "stderr"]),
            TEXT,
        ),
        st.builds(
            lambda plain, html: nbformat.v4.new_output(
                "display_data", data={"text/plain": plain, "text/html": html, "image/png": "iVBO"}
            ),
            TEXT,
            TEXT,
        ),
        st.builds(
            lambda value: nbformat.v4.new_output(
                "execute_result", data={"application/json": {"k": value}}, execution_count=3
            ),
            TEXT,
        ),
        st.builds(
            lambda ename: nbformat.v4.new_output(
                "error", ename=ename, evalue="bad", traceback=["a\n", "b"]
            ),
            TEXT,
        ),
    ),
    max_size=3,
)
EDITS = st.lists(
    st.tuples(
        st.sampled_from(["source", "outputs", "insert", "delete", "move", "clear", "metadata"]),
        st.integers(min_value=0, max_value=50),
        TEXT,
        OUTPUTS,
        st.sampled_from(["code", "markdown", "raw"]),
    ),
    max_size=12,
)


def expected(doc: nbformat.NotebookNode) -> bytes:
    return (nbformat.writes(doc) + "\n").encode()


def apply(doc: nbformat.NotebookNode, edit: tuple) -> set[str]:
    """One edit, as the writer makes it; the ids it reports as changed in place."""
    kind, at, text, outputs, cell_type = edit
    cells = doc.cells
    code = [cell for cell in cells if cell.cell_type == "code"]
    if kind == "insert" or not cells:
        cell = nb.make_cell(cell_type, text)
        nb.InsertCell(cell, index=at % (len(cells) + 1)).apply(doc)
        return set()
    target = cells[at % len(cells)]
    if kind == "source":
        nb.SetCell(cell_id=target.id, source=text, cell_type=cell_type).apply(doc)
        return {target.id}
    if kind == "outputs" and code:
        cell = code[at % len(code)]
        cell.outputs = outputs
        cell.execution_count = at or None
        return {cell.id}
    if kind == "delete":
        nb.DeleteCell(cell_id=target.id).apply(doc)
        return set()
    if kind == "move":
        nb.MoveCell(cell_id=target.id, to=at % len(cells)).apply(doc)
        return set()
    if kind == "clear":
        nb.ClearOutputs(every_cell=True).apply(doc)
        return set(nb.cell_ids(doc))
    doc.metadata.setdefault("nb", {})["revision"] = f"x-{at}"
    target.metadata["tags"] = [text]
    return {target.id}


@settings(max_examples=150, deadline=None)
@given(EDITS)
def test_the_composed_file_is_what_nbformat_writes_after_any_edits(edits):
    doc = nb.new_notebook()
    doc.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "py"}
    composer = FileComposer()
    assert composer.compose(doc, ()).data() == expected(doc)
    for edit in edits:
        changed = apply(doc, edit)
        composed = composer.compose(doc, changed)
        assert composed.data() == expected(doc), edit
        assert composed.digest() == digest(composed.data())


def test_a_write_serialises_only_the_cells_that_changed():
    doc = nb.new_notebook()
    doc.cells = [nb.make_cell("code", f"plot({n})") for n in range(300)]
    for cell in doc.cells:
        cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "A" * 1000})]
    composer = FileComposer()
    composer.compose(doc, ())
    assert composer.serialised == 300
    running = doc.cells[0]
    running.outputs = [nbformat.v4.new_output("stream", name="stdout", text="epoch 1\n")]
    assert composer.compose(doc, {running.id}).data() == expected(doc)
    assert composer.serialised == 1
    doc.cells[5] = nb.make_cell("markdown", "a cell replaced by a merge")  # a new object
    assert composer.compose(doc, ()).data() == expected(doc)
    assert composer.serialised == 1
