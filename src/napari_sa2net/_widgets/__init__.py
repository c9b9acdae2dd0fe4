"""The napari edge: dock widgets that translate user input into core jobs and show their progress.

Each widget lives in its own module (``segment``, ``finetune``, ``batch``) and holds no compute:
it builds a job generator from the core (``inference``, ``engine``) and hands it to the one runner
in :mod:`._runner`. Importing this package imports neither Qt nor torch.
"""
