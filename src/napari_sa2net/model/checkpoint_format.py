"""The name and version of the checkpoint format, shared by the checkpoint and package readers."""

FORMAT = "napari-sa2net-checkpoint"
FORMAT_VERSION = 1
