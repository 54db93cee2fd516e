"""Reporting, from results/ only (never trains or scores): the paper's tables, macros and README section (`paper`,
with `latex`, `macros`, `tables`), the figures by subject (`layer_figures`, `training_figures`,
`evaluation_figures`), one seaborn style and atomic saving (`plots`), the static HTML of the executed notebooks
(`html`)."""
