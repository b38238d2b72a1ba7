"""mtlswin.data.importers"""
