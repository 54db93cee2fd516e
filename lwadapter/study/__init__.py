"""The study's steps, one module per notebook (02 base_models ... 06 evaluation): which models, runs and comparisons
the study makes, each step one call that returns a tidy table. The stages they call live in lwadapter/."""
