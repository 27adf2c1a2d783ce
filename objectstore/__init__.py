"""objectstore"""
