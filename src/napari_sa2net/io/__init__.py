"""Paths in, lazy arrays out; writers that never leave a half-written file.

Everything is re-exported lazily (module ``__getattr__``) so that ``import napari_sa2net.io``
loads neither dask, zarr nor tifffile; the submodule is imported on first use of a name.
"""

from __future__ import annotations

from .._lazy import lazy_exports

#: Public name -> submodule that defines it.
_EXPORTS: dict[str, str] = {
    "ImageSource": "source",
    "open_image": "images",
    "atomic_path": "atomic",
    "write_labels_tiff": "writers",
    "write_ome_zarr_labels": "writers",
    "read_labels": "labels",
    "LabelStore": "label_store",
    "create_label_store": "label_store",
    "finalize_label_store": "label_store",
    "find_files": "listing",
    "write_table": "tables",
    "read_table": "tables",
    "find_image_label_pairs": "folders",
    "read_image_plane": "folders",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
