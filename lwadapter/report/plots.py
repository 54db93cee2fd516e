"""One seaborn style for every figure; figures saved as PDF and PNG under paper/figures/."""

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from lwadapter.runtime import FIGURES_DIR


def style() -> None:
    """The paper's look: white grid, colourblind palette, fonts sized for a two-column page."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight",
                         "pdf.fonttype": 42, "svg.hashsalt": "lwadapter"})


def save(fig, name: str, folder=FIGURES_DIR) -> None:
    """Save `fig` as <name>.pdf and <name>.png with deterministic metadata (atomic: temporary file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    for ext, meta in (("pdf", {"CreationDate": None, "Producer": "lwadapter"}), ("png", {"Software": "lwadapter"})):
        path = folder / f"{name}.{ext}"
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format=ext, metadata=meta)
        tmp.replace(path)


def integer_ticks(ax, axis: str = "x") -> None:
    """Whole-number ticks only (layers, depth, epochs)."""
    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))


def interaction_counts(data):
    """Histograms (log scale) of interactions per user and per item of a prepared dataset."""
    import numpy as np
    import pandas as pd

    per_user = np.array([len(t) + 2 for t in data.train])
    per_item = np.bincount(np.concatenate([np.concatenate([t, [v, s]]) for t, v, s in
                                           zip(data.train, data.valid, data.test)]).astype(int),
                           minlength=data.n_items)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, values, what in ((axes[0], per_user, "user"), (axes[1], per_item, "item")):
        sns.histplot(pd.Series(values, name=f"interactions per {what}"), bins=30, log_scale=(True, True), ax=ax)
        ax.set_title(f"{data.name}: {len(values)} {what}s")
    fig.tight_layout()
    return fig
