"""Models: the Swin encoder, the Swin-Unet decoder, MTL-Swin-Unet, Joint-SwinTransformer and baselines.

Importing this package registers every model; build one with :func:`create_model`.
"""

from mtlswin.models.registry import create_model, list_models, tiny_overrides

__all__ = ["create_model", "list_models", "tiny_overrides"]
