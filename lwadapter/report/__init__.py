"""Reporting: the paper's tables and macros (`paper`), its figures (`figures`), one seaborn style (`plots`); reads
only results/, never trains or scores."""
