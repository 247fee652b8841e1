"""Kernels that a chapter explains, its lab uses and the tests check, one module per topic.

``memory``: dependent chains of additions and of loads (latency, the memory hierarchy).
"""
