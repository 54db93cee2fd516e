"""The static HTML rendering of the committed, executed notebooks builds (what `make html` publishes)."""

import nbformat
import pytest

from lwadapter.report.html import NOTEBOOKS_DIR, build_html


def test_every_committed_notebook_renders_with_its_outputs(tmp_path):
    pages = build_html(tmp_path)
    notebooks = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    assert [p.name for p in pages] == ["index.html", *(f"{nb.stem}.html" for nb in notebooks)]
    index = pages[0].read_text()
    for nb, page in zip(notebooks, pages[1:]):
        text = page.read_text()
        assert f'href="{page.name}"' in index
        outputs = [o for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
        assert outputs and "jp-OutputArea" in text  # stored outputs are shown, not dropped
        assert sum("image/png" in o.get("data", {}) for o in outputs) <= text.count("data:image/png;base64")


def test_a_folder_without_notebooks_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no numbered notebooks"):
        build_html(tmp_path / "out", notebooks_dir=tmp_path)
