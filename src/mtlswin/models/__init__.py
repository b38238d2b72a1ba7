"""Models: the Swin encoder, the Swin-Unet decoder, MTL-Swin-Unet, Joint-SwinTransformer and baselines.

Importing this package registers every model (each family module registers its own, in the order imported
here, which is the order :func:`mtlswin.models.registry.models_with` lists them); build one with
:func:`create_model`, save it with :func:`save_model` and rebuild it from the file alone with :func:`load_model`.
"""

# The families register their models on import, in this order (not sorted on purpose).
# isort: off
from mtlswin.models import classifier, multitask, joint, seg_gated, baselines  # noqa: F401

# isort: on
from mtlswin.models.checkpoint import save_model
from mtlswin.models.factory import create_model, load_model
from mtlswin.models.registry import list_models, test_overrides

__all__ = ["create_model", "list_models", "load_model", "save_model", "test_overrides"]
