"""Lambda entry point of the callback endpoint (template.yaml: ``Handler: callback_app.lambda_handler``).

The handler lives in :mod:`polyv_prewarm.callback_handler`, inside the package, so that the local
stack's HTTP API serves the very same decorated handler.
"""

from polyv_prewarm.callback_handler import lambda_handler

__all__ = ["lambda_handler"]
