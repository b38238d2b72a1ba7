"""mtlswin: multitask Swin Transformers for medical image classification under spurious correlation."""

__version__ = "0.1.0"
