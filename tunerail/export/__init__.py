"""`tunerail export`: merged weights, the adapter or a GGUF, verified on the frozen test rows, with a model card.

Entry point: ``tunerail.export_model(run_dir, formats=("merged", "adapter"))`` (``tunerail/export/recipe.py``).
"""

from tunerail.export.recipe import FORMATS, ExportResult, export_model

__all__ = ["FORMATS", "ExportResult", "export_model"]
