"""The executed study notebooks as static HTML, readable without running anything: `python -m lwadapter.report.html
[--out results/html]` (also `make html`) renders every committed notebook (its stored outputs, figures included)
with nbconvert and writes an index page linking them in order."""

import argparse
import html
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from lwadapter.results import atomic_write_text
from lwadapter.runtime import RESULTS_DIR, ROOT

NOTEBOOKS_DIR = ROOT / "notebooks"


def title(notebook) -> str:
    """The notebook's first markdown heading (its name when it has none)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def build_html(out: Path = RESULTS_DIR / "html", notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """One HTML page per notebook (outputs as stored, no execution) plus index.html; returns the pages written."""
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks (01_*.ipynb ...) in {notebooks_dir}")
    exporter = HTMLExporter(template_name="lab")
    pages, links = [], []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": path.stem}})
        page = Path(out) / f"{path.stem}.html"
        atomic_write_text(page, body)
        pages.append(page)
        links.append(f'<li><a href="{page.name}">{html.escape(path.stem)}</a>: {html.escape(title(notebook))}</li>')
    index = Path(out) / "index.html"
    atomic_write_text(index, "<!doctype html><meta charset='utf-8'><title>lwadapter: the executed study</title>"
                      "<h1>lwadapter: the executed study notebooks</h1><ol>" + "".join(links) + "</ol>\n")
    return [index, *pages]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "html")
    args = parser.parse_args(argv)
    for page in build_html(args.out):
        print(page.relative_to(ROOT) if page.is_relative_to(ROOT) else page)


if __name__ == "__main__":
    main()
