"""LaTeX tables: booktabs tables of data frames, written to paper/tables/."""

import math
import re

import pandas as pd

from lwadapter.results import atomic_write_text
from lwadapter.runtime import ROOT

TABLES_DIR = ROOT / "paper" / "tables"


def escape(text) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", str(text))


def latex_table(frame: pd.DataFrame, caption: str, label: str, digits: int = 3) -> str:
    """A booktabs table (numbers right-aligned, `digits` decimals, NaN as an en dash)."""
    def cell(v):
        if isinstance(v, float):
            return "--" if math.isnan(v) else f"{v:.{digits}f}"
        return escape(v)

    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
             r"\begin{adjustbox}{max width=\linewidth}", rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(escape(c) for c in frame.columns) + r" \\",
             r"\midrule"]
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{adjustbox}", r"\end{table}", ""]
    return "\n".join(lines)


def write_table(name: str, frame: pd.DataFrame, caption: str, digits: int = 3, folder=None) -> str:
    """Write paper/tables/<name>.tex."""
    text = latex_table(frame, caption, f"tab:{name}", digits)
    atomic_write_text((folder or TABLES_DIR) / f"{name}.tex", text)
    return text
