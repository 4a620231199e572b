"""Geometric verification of candidate copies and the one decision built on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.copies import verify
from app.copies.decision import CopyJudge, CopyRule
from app.copies.threshold import Calibration
from app.copies.verified import choose_verified
from app.exceptions import NotFound
from app.gallery.imaging import thumbnail
from app.gallery.keys import thumb_name

GROCERY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "grocery" / "dataset"


@pytest.fixture
def scene() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee()).convert("RGB")  # 600 x 400, textured


def score(query: Image.Image, gallery: Image.Image) -> float:
    """As the app scores a pair: both as stored thumbnails, the query also mirrored."""
    stored = verify.as_stored(query)
    return verify.verified_score(
        verify.query_features(stored), verify.features(verify.as_stored(gallery))
    )


def another_shot(image: Image.Image) -> Image.Image:
    """The same scene from a step aside: an overlapping view under a perspective warp."""
    w, h = image.size
    shift = 0.12
    corners = [  # where the output's corners come from in the input (PIL's QUAD)
        (w * 0.05, h * 0.02),
        (w * 0.02, h * 0.98),
        (w * (1 - shift), h * 0.92),
        (w * (1 - shift + 0.1), h * 0.06),
    ]
    quad = tuple(v for corner in corners for v in corner)
    return image.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)


def test_a_cropped_and_downscaled_copy_verifies_far_above_another_shot(scene) -> None:
    w, h = scene.size
    copy = scene.crop((w // 8, h // 10, w - w // 10, h - h // 8)).resize((240, 160))
    assert score(copy, scene) >= 40
    assert score(another_shot(scene), scene) < 10


def test_a_mirrored_copy_verifies_through_the_mirrored_query(scene) -> None:
    from PIL import ImageOps

    assert score(ImageOps.mirror(scene), scene) >= 40


def test_unrelated_photos_do_not_verify(scene) -> None:
    from skimage import data

    other = Image.fromarray(data.astronaut()).convert("RGB")
    assert score(other, scene) < 5


@pytest.mark.skipif(not GROCERY.exists(), reason="the shared Grocery photos are absent")
def test_consecutive_shelf_shots_of_one_product_do_not_verify_as_copies() -> None:
    folder = GROCERY / "train" / "Fruit" / "Apple" / "Granny-Smith"
    first, last = (Image.open(folder / f"Granny-Smith_00{n}.jpg").convert("RGB") for n in (1, 5))
    assert score(first, last) < 10
    assert score(first.resize((200, 200)), first) >= 40  # while a copy of one does


def agreement_of(query: Image.Image, gallery: Image.Image) -> tuple[int, float]:
    """Tight matches of the pair's fit and the share of its overlap whose pixels agree."""
    plain = verify.query_features(verify.as_stored(query)).plain
    other = verify.features(verify.as_stored(gallery))
    found = verify.fit(plain, other)
    assert found is not None
    return found.tight, verify.agreement(plain, other, found.matrix)


def test_a_subject_moved_before_a_still_camera_fits_tightly_but_is_not_a_copy(scene) -> None:
    from PIL import ImageDraw
    from skimage import data

    w, h = scene.size
    moved = scene.copy()  # the same background, something else in the middle
    moved.paste(Image.fromarray(data.astronaut()).resize((w // 2, h // 2)), (w // 4, h // 4))
    tight, agreed = agreement_of(moved, scene)
    assert tight >= 100 and agreed < verify.AGREEMENT  # the keypoints alone would say copy
    assert score(moved, scene) == 0
    captioned = scene.copy()  # a copy with a caption: a few blocks differ
    ImageDraw.Draw(captioned).text((20, 20), "COPYRIGHT 2026", fill="white", font_size=40)
    assert agreement_of(captioned, scene)[1] >= 0.9
    assert score(captioned, scene) >= 40


@pytest.mark.skipif(not GROCERY.exists(), reason="the shared Grocery photos are absent")
def test_a_product_turned_in_the_hand_before_the_same_shelf_is_not_a_copy() -> None:
    folder = GROCERY / "train" / "Packages" / "Juice" / "Tropicana-Mandarin-Morning"
    first, second = (
        Image.open(folder / f"Tropicana-Mandarin-Morning_00{n}.jpg").convert("RGB") for n in (2, 3)
    )
    assert agreement_of(first, second)[0] >= 100  # the shelf behind is the same pixels
    assert score(first, second) == 0
    w, h = first.size
    crop = first.crop((w // 16, h // 16, w, h * 7 // 8))
    assert score(crop.resize((crop.width * 2 // 3, crop.height * 2 // 3)), first) >= 40


def test_without_verification_the_embedding_threshold_decides() -> None:
    rule = CopyRule.of(Calibration(threshold=0.9))
    assert not rule.verifies and rule.floor == 0.9
    assert rule.decide(0.91, lambda: pytest.fail("nothing to verify"))
    assert not rule.decide(0.89, lambda: pytest.fail("nothing to verify"))


def test_with_verification_only_candidates_are_verified_and_it_decides() -> None:
    rule = CopyRule(threshold=0.9, candidate=0.6, verified=20.0)
    assert rule.verifies and rule.floor == 0.6
    assert not rule.decide(0.59, lambda: pytest.fail("below the candidate threshold"))
    assert rule.decide(0.65, lambda: 25.0)  # a heavy downscale the embedding scores low
    assert not rule.decide(0.95, lambda: 3.0)  # another shot the embedding scores high
    # Nothing to verify with (a thumbnail that cannot be read): the embedding decides.
    assert rule.decide(0.95, lambda: None) and not rule.decide(0.7, lambda: None)


def test_the_verified_rule_lets_most_copies_through_and_keeps_the_precision() -> None:
    rng = np.random.default_rng(0)
    pos_emb = rng.uniform(0.6, 1.0, 200)
    pos_ver = rng.uniform(30, 300, 200)
    neg_emb = rng.uniform(0.5, 0.95, 400)
    neg_ver = rng.uniform(0, 25, 400)
    rule = choose_verified(pos_emb, pos_ver, neg_emb, neg_ver, target=0.99)
    assert rule.candidate == pytest.approx(np.quantile(pos_emb, 0.01))
    assert 25 <= rule.verified <= 30.5  # just above every negative
    assert rule.precision == 1.0
    assert rule.recall == pytest.approx(np.mean(pos_emb >= rule.candidate))


class Thumbnails:
    """The part of an ImageStore a judge reads: stored thumbnails by object name."""

    def __init__(self, images: dict[str, Image.Image]) -> None:
        self.data = {thumb_name(key): thumbnail(image) for key, image in images.items()}

    def get(self, name: str) -> bytes:
        if name not in self.data:
            raise NotFound("no such image")
        return self.data[name]


def test_the_judge_verifies_candidates_against_stored_thumbnails(scene) -> None:
    original = "a" * 64 + ".jpg"
    judge = CopyJudge(
        CopyRule(threshold=0.95, candidate=0.5, verified=20.0), Thumbnails({original: scene})
    )  # type: ignore[arg-type]
    w, h = scene.size
    copy = judge.query(image=scene.crop((0, 0, w * 3 // 4, h)).resize((300, 266)))
    assert copy.is_copy(original, 0.7)  # below the embedding threshold, verified
    assert not judge.query(image=another_shot(scene)).is_copy(original, 0.97)
    # A gallery image without a readable thumbnail: the embedding threshold decides.
    missing = "b" * 64 + ".jpg"
    assert copy.is_copy(missing, 0.96) and not copy.is_copy(missing, 0.7)


def test_a_results_page_verifies_only_its_best_candidates() -> None:
    """Verifying reads and matches two images: a page verifies at most MARKS_VERIFIED."""
    from types import SimpleNamespace

    from app.copies.decision import CopyRule
    from app.search.service import MARKS_VERIFIED, _copy_marks
    from app.vectors.records import Hit

    rule = CopyRule(threshold=0.9, candidate=0.7, verified=50.0)
    asked: list[tuple[str, bool]] = []

    def is_copy(key: str, score: float, *, verify_pair: bool = True) -> bool:
        asked.append((key, verify_pair))
        return rule.decide(score, lambda: 80.0 if verify_pair else None)

    query = SimpleNamespace(judge=SimpleNamespace(rule=rule), is_copy=is_copy)
    scores = [0.95, 0.85, 0.8, 0.75, 0.92, 0.6]
    hits = [Hit(id=str(i), key=f"{i}.jpg", score=s, label="", metadata={})
            for i, s in enumerate(scores)]
    marks = _copy_marks(hits, query)  # type: ignore[arg-type]
    verified = [key for key, verify_pair in asked if verify_pair]
    assert verified == ["0.jpg", "1.jpg", "2.jpg"] and MARKS_VERIFIED == 3
    # verified pairs pass on their score; the rest fall back to the 0.9 threshold
    assert marks == [True, True, True, False, True, False]
