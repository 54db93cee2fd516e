"""The first call of every study notebook: quiet libraries, seeds, the figure style, and where its parameter set reads
and writes."""

from lwadapter.report import plots
from lwadapter.runtime import RunFolders, quiet, set_seed
from lwadapter.sequences import SequenceData


def start(dataset: str, parameter_set: str, seed: int = 0) -> RunFolders:
    """Quiet the known library chatter, seed every generator, set the paper's figure style; the run's folders."""
    quiet()
    set_seed(seed)
    plots.style()
    return RunFolders(dataset, parameter_set)


def start_on_prepared(dataset: str, parameter_set: str, seed: int = 0) -> tuple[RunFolders, SequenceData]:
    """`start`, plus the sequences notebook 01 prepared for this dataset and parameter set (notebooks 02-06)."""
    folders = start(dataset, parameter_set, seed)
    return folders, SequenceData.load(folders.sequences)
