"""End-to-end pipelines: ``mtlswin reproduce``."""
