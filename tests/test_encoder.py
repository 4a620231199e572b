"""The encoder, loaded through the real from_pretrained path, on tiny and real models."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.exceptions import ModelLoadError
from app.gallery import imaging
from app.model.encoder import Encoder, bf16_supported
from app.model.preprocess import Preprocess
from app.model.projection import HeadSpec, ProjectionHead, save_head
from tests.helpers import tiny_model


def rgb(data: bytes) -> Image.Image:
    return imaging.decode(data).image


def recompressed_crop(data: bytes, *, size: int = 300, quality: int = 70) -> bytes:
    """A resized, slightly cropped, JPEG re-encoded copy of an image."""
    image = rgb(data)
    w, h = image.size
    image = image.crop((w // 20, h // 20, w - w // 20, h - h // 20))
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def test_embeddings_are_unit_float32_of_the_model_dim(tiny_model_dir: Path, photos) -> None:
    encoder = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32")
    vectors = encoder.embed([rgb(photos["coffee"]), rgb(photos["chelsea"])])
    assert vectors.dtype == np.float32
    assert vectors.shape == (2, 64) and encoder.dim == 64
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.isnan(vectors).any()


def test_batching_does_not_change_embeddings(tiny_model_dir: Path, photos) -> None:
    encoder = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32", batch_size=2)
    images = [rgb(d) for d in photos.values()]
    together = encoder.embed(images)
    alone = np.concatenate([encoder.embed([im]) for im in images])
    assert np.allclose(together, alone, atol=1e-5)


def test_an_empty_batch_gives_an_empty_array(tiny_model_dir: Path) -> None:
    assert Encoder.from_pretrained(str(tiny_model_dir)).embed([]).shape[0] == 0


def test_the_fingerprint_tells_different_weights_apart(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from transformers import Dinov2Model

    model = Dinov2Model.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.embeddings.cls_token.add_(1.0)
    model.save_pretrained(tmp_path)
    a = Encoder.from_pretrained(str(tiny_model_dir))
    b = Encoder.from_pretrained(str(tmp_path))
    assert a.fingerprint == Encoder.from_pretrained(str(tiny_model_dir)).fingerprint
    assert a.fingerprint != b.fingerprint


def test_a_model_without_processor_config_uses_the_dinov2_recipe(tmp_path: Path) -> None:
    from transformers import Dinov2Config, Dinov2Model

    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, patch_size=14, image_size=56)
    Dinov2Model(config).save_pretrained(tmp_path)
    encoder = Encoder.from_pretrained(str(tmp_path))
    assert encoder.preprocess == Preprocess.default()
    assert encoder.embed([Image.new("RGB", (80, 60))]).shape == (1, 32)


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="LOOKALIKE_MODEL"):
        Encoder.from_pretrained(str(tmp_path / "nowhere"))


def test_an_exported_head_is_applied(tiny_model_dir: Path, tmp_path: Path, photos) -> None:
    import shutil

    shutil.copytree(tiny_model_dir, tmp_path / "model")
    torch.manual_seed(1)
    head = ProjectionHead(HeadSpec(in_dim=64, out_dim=16, kind="mlp", hidden_dim=32))
    save_head(head, tmp_path / "model", {"base_model": "tiny", "dim": 16, "metric": "COSINE"})
    plain = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32")
    tuned = Encoder.from_pretrained(str(tmp_path / "model"), precision="fp32")
    image = rgb(photos["rocket"])
    assert tuned.dim == 16
    expected = torch.nn.functional.normalize(head(torch.from_numpy(plain.embed([image])).float()
                                             * 0 + _raw_features(plain, image)), dim=1)
    assert np.allclose(tuned.embed([image]), expected.detach().numpy(), atol=1e-5)


def _raw_features(encoder: Encoder, image: Image.Image) -> torch.Tensor:
    from app.model.encoder import pooled_features

    with torch.no_grad():
        return pooled_features(encoder.backbone(pixel_values=encoder.preprocess([image])))


def test_fast_preprocessing_matches_the_hf_processor(tiny_model_dir: Path, photos) -> None:
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(tiny_model_dir)
    images = [rgb(d) for d in photos.values()]
    ours = Preprocess.from_processor(processor)(images)
    theirs = processor(images=images, return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape
    # Same recipe; at most a rounding step of one grey level (1/255/std) apart.
    assert (ours - theirs).abs().max() < 0.02


@pytest.mark.parametrize("precision", ["bf16", "bf16-autocast"])
def test_bf16_embeddings_stay_close_to_fp32_and_keep_the_identity(
    tiny_model_dir: Path, photos, precision: str
) -> None:
    images = [rgb(d) for d in photos.values()]
    fp32 = Encoder.from_pretrained(str(tiny_model_dir), precision="fp32")
    fast = Encoder.from_pretrained(str(tiny_model_dir), precision=precision)
    assert np.min(np.sum(fp32.embed(images) * fast.embed(images), axis=1)) > 0.99
    assert fast.fingerprint == fp32.fingerprint and fast.dtype.startswith("bfloat16")


def test_precision_auto_follows_the_hardware(tiny_model_dir: Path) -> None:
    encoder = Encoder.from_pretrained(str(tiny_model_dir), precision="auto", device="cpu")
    assert encoder.precision == ("bf16" if bf16_supported("cpu") else "fp32")
    with pytest.raises(ValueError, match="precision"):
        Encoder.from_pretrained(str(tiny_model_dir), precision="fp8")


@pytest.mark.parametrize("hardware", [True, False])
def test_explicit_bf16_warns_where_the_cpu_would_emulate_it(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    hardware: bool,
) -> None:
    import app.model.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "bf16_supported", lambda device: hardware)
    with caplog.at_level("WARNING", logger="app.model.encoder"):
        Encoder.from_pretrained(str(tiny_model_dir), precision="bf16", device="cpu")
    assert ("emulates it" in caplog.text) is (not hardware)
    caplog.clear()
    with caplog.at_level("WARNING", logger="app.model.encoder"):  # auto picks fp32 there
        encoder = Encoder.from_pretrained(str(tiny_model_dir), precision="auto", device="cpu")
    assert encoder.precision == ("bf16" if hardware else "fp32")
    assert "emulates it" not in caplog.text


def test_precision_auto_keeps_convolutional_models_in_fp32_on_the_cpu(tmp_path: Path) -> None:
    """bf16 moved MobileNetV2's embeddings to cosine 0.998 (BENCHMARKS.md): auto stays fp32."""
    from transformers import MobileNetV2Config, MobileNetV2Model

    config = MobileNetV2Config(depth_multiplier=0.35, image_size=64)
    MobileNetV2Model(config).save_pretrained(tmp_path)
    encoder = Encoder.from_pretrained(str(tmp_path), precision="auto", device="cpu")
    assert encoder.precision == "fp32"
    bf16 = Encoder.from_pretrained(str(tmp_path), precision="bf16", device="cpu")
    assert bf16.precision == "bf16"


def test_a_classifier_checkpoint_loads_its_backbone_without_a_load_report(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The head of a classification checkpoint is not an alarm: one INFO line, no table."""
    from transformers import Dinov2Config, Dinov2ForImageClassification

    config = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, patch_size=14, image_size=56, num_labels=3)
    Dinov2ForImageClassification(config).save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO, logger="app.model.encoder"):
        encoder = Encoder.from_pretrained(str(tmp_path), precision="fp32")
    assert encoder.dim == 32
    printed = capfd.readouterr().err + caplog.text
    assert "LOAD REPORT" not in printed and "UNEXPECTED" not in printed
    said = [r for r in caplog.records if "not part of the backbone" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert "classifier.bias, classifier.weight" in said[0].getMessage()


def test_backbone_weights_missing_from_the_checkpoint_are_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from safetensors.torch import load_file, save_file

    model = tiny_model(tmp_path, hidden=32)
    weights = load_file(model / "model.safetensors")
    dropped = sorted(k for k in weights if k.endswith("layernorm.weight"))[-1:]
    save_file({k: v for k, v in weights.items() if k not in dropped}, model / "model.safetensors",
              metadata={"format": "pt"})
    with caplog.at_level(logging.INFO, logger="app.model.encoder"):
        Encoder.from_pretrained(str(model), precision="fp32")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("start random" in m and dropped[0] in m for m in warned), warned


@pytest.mark.slow
def test_the_real_mobilenet_loads_without_a_load_report(
    mobilenet_dir: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="app.model.encoder"):
        Encoder.from_pretrained(str(mobilenet_dir), precision="fp32")
    printed = capfd.readouterr().err + caplog.text
    assert "LOAD REPORT" not in printed and "UNEXPECTED" not in printed
    assert "classifier.bias, classifier.weight" in caplog.text


@pytest.mark.slow
def test_the_real_mobilenet_finds_a_recompressed_copy(mobilenet_dir: Path, photos) -> None:
    encoder = Encoder.from_pretrained(str(mobilenet_dir), precision="fp32")
    assert encoder.dim == 1280
    names = list(photos)
    gallery = encoder.embed([rgb(photos[n]) for n in names])
    for index, name in enumerate(names):
        query = encoder.embed([rgb(recompressed_crop(photos[name]))])[0]
        similarities = gallery @ query
        assert int(np.argmax(similarities)) == index, name
        others = np.delete(similarities, index)
        assert similarities[index] > others.max() + 0.1


def test_only_an_aspect_keeping_shrink_may_stand_in_for_the_original() -> None:
    """Ingest makes thumbnails from the encoder's resize only when that is faithful."""
    photo = Image.new("RGB", (640, 480))
    dinov2 = Preprocess.default()  # shortest edge 256
    assert dinov2.shrinks_keeping_aspect(photo, 256)
    assert dinov2.resize(photo).size == (341, 256)
    assert not dinov2.shrinks_keeping_aspect(Image.new("RGB", (640, 200)), 256)  # would enlarge
    assert not dinov2.shrinks_keeping_aspect(photo, 320)  # would not cover the thumbnail
    squash = Preprocess(shortest_edge=None, resize_to=(256, 256), crop=None)
    assert not squash.shrinks_keeping_aspect(photo, 256)  # changes the aspect
    fallback = Preprocess(shortest_edge=None, resize_to=None, crop=None, fallback=object())
    assert not fallback.shrinks_keeping_aspect(photo, 256)
    assert fallback.resize(photo) is photo
