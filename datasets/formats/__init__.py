"""Readers for foreign annotation formats (COCO JSON, Pascal VOC XML, YOLO with other class ids).

Each reader turns its format into :class:`~datasets.formats.common.ForeignImage` records — image file, size and
boxes in pixels with the source's class *names* — and :mod:`datasets.importer` maps those names onto the taxonomy.
"""
