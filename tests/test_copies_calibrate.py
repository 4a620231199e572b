"""The copy threshold: synthetic copies, the threshold choice, calibration stored per collection."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.copies.calibrate import choose_threshold, operating_at
from app.copies.threshold import DEFAULT_THRESHOLD, read_calibration
from app.copies.transforms import ALL_KINDS, HELD_OUT_KINDS, TRAINING_KINDS, make_copies


def add(runner, folder) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["gallery", "add", str(folder), "--label-from-folder"])
    assert result.exit_code == 0, result.output


@pytest.fixture
def picture() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def test_every_copy_kind_changes_the_picture_and_repeats_with_its_seed(picture) -> None:
    first = make_copies(picture, seed=3, kinds=ALL_KINDS)
    again = make_copies(picture, seed=3, kinds=ALL_KINDS)
    assert [k for k, _ in first] == list(ALL_KINDS)
    original = np.asarray(picture.convert("RGB"))
    for (kind, copy), (_, repeat) in zip(first, again, strict=True):
        assert copy.mode == "RGB"
        assert np.array_equal(np.asarray(copy), np.asarray(repeat)), kind
        same = copy.size == picture.size and np.array_equal(np.asarray(copy), original)
        assert not same, f"{kind} left the picture as it was"


def test_held_out_kinds_are_not_used_by_calibration() -> None:
    assert not set(HELD_OUT_KINDS) & set(TRAINING_KINDS)
    assert len(TRAINING_KINDS) >= 5


def test_the_threshold_is_the_lowest_score_with_99_percent_precision() -> None:
    positives = np.array([0.99, 0.98, 0.97, 0.95, 0.90, 0.80])
    negatives = np.array([0.85, 0.70, 0.60])
    point = choose_threshold(positives, negatives, target=0.99)
    assert point.threshold == pytest.approx(0.90)  # 0.80 would let in the 0.85 negative
    assert point.precision == 1.0
    assert point.recall == pytest.approx(5 / 6)


def test_a_lower_target_admits_a_negative_when_it_buys_recall() -> None:
    positives = np.linspace(0.5, 1.0, 100)
    negatives = np.array([0.55])
    point = choose_threshold(positives, negatives, target=0.98)
    assert point.threshold == pytest.approx(0.5)
    assert point.recall == 1.0
    assert point.precision == pytest.approx(100 / 101)
    assert operating_at(positives, negatives, 0.56).precision == 1.0


def test_without_a_reachable_precision_the_threshold_sits_above_every_negative() -> None:
    point = choose_threshold(np.array([0.5, 0.6]), np.array([0.9, 0.95]), target=0.99)
    assert point.threshold > 0.95
    assert point.recall == 0.0


def test_an_uncalibrated_collection_has_the_default_flagged(app, runner, gallery_dir) -> None:
    add(runner, gallery_dir)
    with app.app_context():
        from app.extensions import vectors

        calibration = read_calibration(vectors())
    assert calibration.threshold == DEFAULT_THRESHOLD and not calibration.calibrated
    status = runner.invoke(args=["index", "status"])
    assert "default (not calibrated)" in status.output


def test_calibrating_a_small_gallery_stores_its_threshold_and_figures(
    app, runner, gallery_dir
) -> None:
    add(runner, gallery_dir)
    result = runner.invoke(args=["index", "calibrate", "--sample", "6"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        from app.extensions import vectors

        stored = read_calibration(vectors())
    assert stored.calibrated
    assert 0.0 < stored.threshold <= 1.0
    assert stored.precision is not None and stored.precision >= 0.99
    assert stored.recall is not None and 0.0 <= stored.recall <= 1.0
    assert stored.originals == 6
    assert stored.copies == 6 * len(TRAINING_KINDS)
    # In a gallery of 6 every other image is a neighbour, of the original and of each copy.
    assert stored.negatives + stored.suspected == 6 * 5 * (1 + len(TRAINING_KINDS))
    assert stored.model and stored.date
    # The verified rule is measured on the same sample and stored with its figures.
    assert stored.candidate is not None and 0.0 < stored.candidate <= stored.threshold
    assert stored.verified is not None and stored.verified > 0
    assert stored.verified_precision is not None and stored.verified_precision >= 0.99
    assert stored.verified_recall is not None and 0.0 < stored.verified_recall <= 1.0
    status = runner.invoke(args=["index", "status"])
    assert f"{stored.threshold:.4f} (precision" in status.output
    assert f"verified from {stored.candidate:.4f}" in status.output


def test_calibrating_an_empty_gallery_says_what_to_do(runner) -> None:
    result = runner.invoke(args=["index", "calibrate"])
    assert result.exit_code == 1
    assert "at least two images" in result.output
