"""Tests of the napari edge: widgets, runner, reader, writer, sample data, manifest."""
