"""Kernels: array in, array out; each compiled kernel has a numpy ``*_ref`` twin.

Only modules in this package import :mod:`anionmotion._ext`.
"""
