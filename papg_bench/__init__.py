"""papg-bench: a benchmark harness for visible-infrared person re-identification augmentation."""

__version__ = "0.1.0"
