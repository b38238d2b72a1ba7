"""mtlswin.training"""
