"""The pipeline's stages, one short script each (``python -m stages.<name>``, as dvc.yaml runs them)."""
