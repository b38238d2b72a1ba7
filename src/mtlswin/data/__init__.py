"""mtlswin.data"""
