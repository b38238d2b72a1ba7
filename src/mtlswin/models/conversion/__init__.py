"""Foreign weights -> our models, apart from our own checkpoint format (:mod:`mtlswin.models.checkpoint`).

- :mod:`~mtlswin.models.conversion.swin`: one pure function per Swin source format (official ImageNet Swin,
  Swin-Unet, the authors' MTL-Swin-Unet and Joint-SwinTransformer), each returning a ``LoadReport``;
- :mod:`~mtlswin.models.conversion.files`: reading a foreign file safely, and loading it by its format;
- :mod:`~mtlswin.models.conversion.timm_hub`: timm's ImageNet weights (local cache or download);
- :mod:`~mtlswin.models.conversion.cnn`: the strict loader of ImageNet weights into the CNN baselines;
- :mod:`~mtlswin.models.conversion.convert`: ``mtlswin convert``, a foreign file -> our checkpoint.
"""
