"""mtlswin.explain"""
