"""Models that travel: bioimage.io packages (model format 0.5) of napari-sa2net models.

``export_job(model, out, **settings)`` writes a package; ``model.package`` reads one back
(``load_model("PKG.zip")``). Nothing here is imported before it is used: bioimageio.spec is an
optional dependency (``pip install 'napari-sa2net[bioimageio]'``).
"""

from __future__ import annotations

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "ExportResult": "job",
        "ExportSettings": "job",
        "export_bioimageio": "job",
        "export_job": "job",
    },
)
