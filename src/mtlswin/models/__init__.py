"""Models: the Swin encoder, the Swin-Unet decoder, MTL-Swin-Unet, Joint-SwinTransformer and baselines.

Importing this package registers every model; build one with :func:`create_model`, save it with
:func:`save_model` and rebuild it from the file alone with :func:`load_model`.
"""

from mtlswin.models import baselines, classifier, joint, multitask  # noqa: F401  (registration)
from mtlswin.models.checkpoint import load_model, save_model
from mtlswin.models.registry import create_model, list_models, test_overrides

__all__ = ["create_model", "list_models", "load_model", "save_model", "test_overrides"]
