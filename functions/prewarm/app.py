"""Lambda entry point (template.yaml: ``Handler: app.lambda_handler``).

The handler itself lives in :mod:`polyv_prewarm.handler`, inside the package, so that the
``polyv-prewarm invoke`` command runs the very same decorated handler outside Lambda.
"""

from polyv_prewarm.handler import lambda_handler

__all__ = ["lambda_handler"]
