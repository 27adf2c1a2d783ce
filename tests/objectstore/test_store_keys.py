"""The key layout: safe ids, normalised relative paths, and no way to leave a flight's prefix."""

from __future__ import annotations

import unicodedata

import pytest

from objectstore import keys


@pytest.mark.parametrize("value", ["plant-north", "A", "2024-06-01_block-A", "site.v2", "x" * 64, "a1"])
def test_valid_ids_are_returned_unchanged(value: str) -> None:
    assert keys.validate_id(value, "site") == value


@pytest.mark.parametrize(
    "value",
    ["", "-lead", "trail-", ".hidden", "a/b", "a b", "..", "ü-site", "x" * 65, "a\\b", "a\nb", "tab\t"],
)
def test_unsafe_ids_are_refused_with_the_name_of_the_field(value: str) -> None:
    with pytest.raises(keys.InvalidKey, match=r"flight .* is not a safe id"):
        keys.validate_id(value, "flight")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("DJI_0001.JPG", "DJI_0001.JPG"),
        ("sub dir/Bild 1.jpg", "sub dir/Bild 1.jpg"),
        ("Flug Ü/é ñ 北京.jpg", "Flug Ü/é ñ 北京.jpg"),
        (unicodedata.normalize("NFD", "Müller/é.jpg"), "Müller/é.jpg"),  # macOS NFD → NFC
        ("a\\b\\c.jpg", "a/b/c.jpg"),  # Windows separators
        ("..foo/bar..jpg", "..foo/bar..jpg"),  # dots inside names are fine
    ],
)
def test_relative_paths_are_normalised(given: str, expected: str) -> None:
    result = keys.normalise_relative_path(given)
    assert result == expected
    assert unicodedata.is_normalized("NFC", result)


@pytest.mark.parametrize(
    "given",
    [
        "",
        "../x.jpg",
        "a/../../x.jpg",
        "a/./x.jpg",
        "/etc/passwd",
        "\\\\server\\share\\x.jpg",
        "..\\..\\x.jpg",
        "C:\\x.jpg",
        "c:x.jpg",
        "a//b.jpg",
        "a/",
        "x\x00.jpg",
        "x\n.jpg",
        "..",
        ".",
    ],
)
def test_escape_attempts_are_refused(given: str) -> None:
    with pytest.raises(keys.InvalidKey, match="relative path"):
        keys.normalise_relative_path(given)
    with pytest.raises(keys.InvalidKey):
        keys.image_key("site", "flight", given)
    with pytest.raises(keys.InvalidKey):
        keys.quarantine_key("site", "flight", given)


@pytest.mark.parametrize("rel", ["a.jpg", "x/y z/ü.JPG", "a\\b.jpg", "...jpg"])
def test_every_key_stays_under_its_flight_prefix(rel: str) -> None:
    image = keys.image_key("s1", "f1", rel)
    assert image.startswith("raw/s1/f1/images/")
    assert keys.relative_path_of(image, keys.images_prefix("s1", "f1")) == keys.normalise_relative_path(rel)
    assert ".." not in image.split("/")
    q = keys.quarantine_key("s1", "f1", rel)
    assert q.startswith("quarantine/s1/f1/")
    assert keys.quarantine_reason_key("s1", "f1", rel) == q + ".reason.json"


def test_layout_of_the_fixed_keys() -> None:
    assert keys.manifest_key("s1", "f1") == "raw/s1/f1/manifest.json"
    assert keys.flight_prefix("s1", "f1") == "raw/s1/f1/"
    with pytest.raises(keys.InvalidKey, match="site"):
        keys.manifest_key("../s", "f1")


def test_keys_longer_than_s3_allows_are_refused() -> None:
    with pytest.raises(keys.InvalidKey, match="1024 bytes"):
        keys.image_key("s", "f", "/".join(["ü" * 100] * 6))


def test_relative_path_of_a_foreign_key_is_refused() -> None:
    with pytest.raises(keys.InvalidKey, match="not under"):
        keys.relative_path_of("raw/other/f/images/x.jpg", keys.images_prefix("s", "f"))
