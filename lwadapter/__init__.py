"""lwadapter: which decoder layers of an LLM recommender matter, cut the rest, heal the cut model."""

import warnings

# tqdm.auto falls back to text bars without ipywidgets; its warning carries a machine path into notebook outputs.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
