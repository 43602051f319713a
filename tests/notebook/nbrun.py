"""Run repository notebooks in a scratch copy of the repository layout (notebooks/ beside data/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def scratch_copy(dest: Path) -> Path:
    """Copy notebooks/ and data/ into ``dest`` so runs never write into the repository; return ``dest``."""
    shutil.copytree(NOTEBOOKS, dest / "notebooks", ignore=shutil.ignore_patterns(".batchframe", "*.parquet",
                                                                                    ".ipynb_checkpoints"))
    shutil.copytree(ROOT / "data", dest / "data")
    return dest


def client_for(path: Path, *, timeout: float = 120) -> tuple[nbformat.NotebookNode, NotebookClient]:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    return nb, client


def execute(path: Path, *, timeout: float = 120) -> nbformat.NotebookNode:
    """Execute every cell (raising ``CellExecutionError`` on the first error) and return the notebook."""
    nb, client = client_for(path, timeout=timeout)
    client.execute()
    return nb


def outputs_text(cell) -> str:
    """All text a cell showed: streams, plain-text results and HTML."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
            parts.append(out.data.get("text/html", ""))
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
    return "\n".join(parts)


def stderr_of(nb) -> list[str]:
    """Every stderr stream of the notebook (warnings, tracebacks printed by threads): a clean run has none."""
    return [out.text for cell in nb.cells for out in cell.get("outputs", [])
            if out.output_type == "stream" and out.name == "stderr"]


def tagged(nb, tag: str):
    """The one cell carrying ``tag`` in its metadata."""
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def write_notebook(path: Path, sources: list[str]) -> Path:
    """A python3 notebook of code cells (for tests that drive a kernel cell by cell)."""
    from nbformat.v4 import new_code_cell, new_notebook

    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb = new_notebook(cells=[new_code_cell(src) for src in sources], metadata={"kernelspec": kernelspec})
    nbformat.write(nb, path)
    return path
