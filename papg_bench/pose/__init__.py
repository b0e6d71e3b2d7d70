"""Keypoint formats, estimators, importers and pose maps."""
