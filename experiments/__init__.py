"""Experiment scripts: what synthvi shows and why defaults were chosen (figures in docs/experiments/)."""
