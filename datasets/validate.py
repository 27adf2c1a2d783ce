"""Validate any YOLO detection set: every problem reported with its file, line and reason.

Errors (the set fails): unreadable images, malformed label lines (field count, non-numbers), unknown class ids,
boxes out of range or degenerate, labels without an image, the same image content twice, two images sharing one
label file, split folders named in data.yaml that do not exist, a set with no images.
Warnings: images without a label file (legal background images: counted), the same box twice in one file.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.yolo import DatasetError, find_yolo_set, label_path_for, parse_label_text

log = logging.getLogger(__name__)

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Issue:
    """One finding: severity, a short code, the file, the 1-based line (0: the whole file) and the reason."""

    severity: str
    code: str
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{self.severity.upper():7s} {where}: {self.reason} [{self.code}]"


@dataclass
class ValidationReport:
    """The result of :func:`validate_dataset`: counts and issues; ``ok`` is False when any error was found."""

    root: str
    names: list[str] | None
    images: int = 0
    label_files: int = 0
    boxes: int = 0
    background_images: int = 0
    images_without_labels: int = 0
    per_split: dict[str, int] = field(default_factory=dict)
    per_class: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> Counter[str]:
        return Counter(i.code for i in self.issues)

    def as_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "ok": self.ok,
            "names": self.names,
            "images": self.images,
            "label_files": self.label_files,
            "boxes": self.boxes,
            "background_images": self.background_images,
            "images_without_labels": self.images_without_labels,
            "per_split": self.per_split,
            "per_class": self.per_class,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "issues": [i.__dict__ for i in self.issues],
        }

    def summary(self) -> str:
        return (
            f"{self.root}: {self.images} images, {self.boxes} boxes, {self.background_images} background "
            f"({self.images_without_labels} without a label file); {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings — {'OK' if self.ok else 'FAILED'}"
        )


def _check_image(path: Path) -> str | None:
    """None if the image decodes fully, else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.width < 1 or im.height < 1:
                return f"image has size {im.width}x{im.height}"
    except Exception as exc:  # any decoder error: the image cannot be trained on
        return f"unreadable image ({type(exc).__name__}: {exc})"
    return None


def validate_dataset(path: Path, names: list[str] | None = None, progress: bool = True) -> ValidationReport:
    """Check a YOLO set (data.yaml, or a folder with images/ and labels/) and report every problem.

    ``names`` bounds class ids when the set carries none (no data.yaml / classes.txt).

    Raises:
        DatasetError: ``path`` is not a YOLO set at all (nothing to validate).
    """
    from tqdm import tqdm

    found = find_yolo_set(Path(path))
    names = found.names if found.names is not None else names
    report = ValidationReport(root=str(found.root), names=names)
    n_classes = len(names) if names is not None else None
    rel = _relativiser(found.root)
    for split, missing in found.missing_split_dirs:
        report.issues.append(
            Issue(ERROR, "missing_split", rel(missing), 0, f"'{split}' folder does not exist")
        )
    if not found.images:
        report.issues.append(Issue(ERROR, "no_images", rel(found.root), 0, "no images found"))
    per_class: Counter[int] = Counter()
    digests: dict[str, Path] = {}
    label_owner: dict[Path, Path] = {}
    for img in tqdm(sorted(found.images), desc="validate", unit="img", disable=not progress):
        report.images += 1
        report.per_split[found.images[img] or "all"] = report.per_split.get(found.images[img] or "all", 0) + 1
        if not img.exists():
            report.issues.append(Issue(ERROR, "missing_image", rel(img), 0, "listed image does not exist"))
            continue
        reason = _check_image(img)
        if reason:
            report.issues.append(Issue(ERROR, "unreadable_image", rel(img), 0, reason))
        digest = hashlib.sha256(img.read_bytes()).hexdigest()
        if digest in digests:
            report.issues.append(
                Issue(ERROR, "duplicate_image", rel(img), 0, f"same content as {rel(digests[digest])}")
            )
        else:
            digests[digest] = img
        try:
            label = label_path_for(img)
        except DatasetError as exc:
            report.issues.append(Issue(ERROR, "no_label_path", rel(img), 0, str(exc)))
            continue
        if label in label_owner:
            report.issues.append(
                Issue(
                    ERROR, "label_clash", rel(img), 0, f"shares {rel(label)} with {rel(label_owner[label])}"
                )
            )
            continue
        label_owner[label] = img
        if not label.exists():
            report.images_without_labels += 1
            report.background_images += 1
            report.issues.append(
                Issue(
                    WARNING, "no_label_file", rel(img), 0, f"no label file {rel(label)}: taken as background"
                )
            )
            continue
        report.label_files += 1
        try:
            text = label.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            report.issues.append(Issue(ERROR, "malformed_file", rel(label), 0, f"not UTF-8 text ({exc})"))
            continue
        boxes, problems = parse_label_text(text, n_classes)
        for p in problems:
            report.issues.append(Issue(ERROR, p.code, rel(label), p.line, p.reason))
        if not boxes and not problems:
            report.background_images += 1
        seen: dict[tuple, int] = {}
        numbered = [ln for ln in enumerate(text.splitlines(), 1) if ln[1].split()]
        good_lines = [n for n, _ in numbered if n not in {p.line for p in problems}]
        for line_no, b in zip(good_lines, boxes, strict=True):
            key = (b.class_id, round(b.cx, 6), round(b.cy, 6), round(b.w, 6), round(b.h, 6))
            if key in seen:
                report.issues.append(
                    Issue(WARNING, "duplicate_box", rel(label), line_no, f"same box as line {seen[key]}")
                )
            seen.setdefault(key, line_no)
            per_class[b.class_id] += 1
        report.boxes += len(boxes)
    for orphan in found.orphan_labels:
        report.issues.append(Issue(ERROR, "label_without_image", rel(orphan), 0, "label file has no image"))
    report.label_files += len(found.orphan_labels)
    report.per_class = {
        (names[c] if names is not None and c < len(names) else str(c)): n
        for c, n in sorted(per_class.items())
    }
    order = defaultdict(int, {ERROR: 0, WARNING: 1})
    report.issues.sort(key=lambda i: (order[i.severity], i.path, i.line))
    return report


def _relativiser(root: Path):
    def rel(p: Path) -> str:
        try:
            return Path(p).relative_to(root).as_posix()
        except ValueError:
            return str(p)

    return rel
