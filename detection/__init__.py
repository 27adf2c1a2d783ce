"""Defect detection: taxonomy, the numpy inference core, slicing, training, evaluation and the model registry.

The inference core (everything except ``train``, ``evaluate`` when given a .pt, and ``cli``) imports no torch,
ultralytics or dagster: the on-site runtime uses it as it is.
"""
