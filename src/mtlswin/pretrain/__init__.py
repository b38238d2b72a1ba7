"""Self-supervised pretraining of the Swin encoder (SimMIM), a peer of :mod:`mtlswin.training`.

``mtlswin pretrain CONFIG`` (:mod:`mtlswin.cli.pretrain`) -> ``RUN/encoder.safetensors``, which
``model.pretrained: RUN/encoder.safetensors`` loads into every Swin family (docs/pretrain.md).
"""
