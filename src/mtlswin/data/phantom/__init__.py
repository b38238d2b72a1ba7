"""mtlswin.data.phantom"""
