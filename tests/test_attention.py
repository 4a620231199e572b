"""Matmul attention: the same outputs as transformers' own, switched on only where it can be."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

from app.model.attention import NAME, use_matmul_attention
from app.model.encoder import Encoder, default_batch_size


@pytest.mark.parametrize("reference", ["sdpa", "eager"])
def test_matmul_attention_gives_the_same_features(tiny_model_dir: Path, reference: str) -> None:
    model = AutoModel.from_pretrained(tiny_model_dir, attn_implementation=reference).eval()
    switched = copy.deepcopy(model)
    assert use_matmul_attention(switched)
    assert switched.config._attn_implementation == NAME
    pixels = torch.randn(3, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(pixel_values=pixels).last_hidden_state
        got = switched(pixel_values=pixels).last_hidden_state
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_matmul_attention_keeps_gradients(tiny_model_dir: Path) -> None:
    """The trainer's validation shares the backbone with training, so backward must still work."""
    model = AutoModel.from_pretrained(tiny_model_dir)
    use_matmul_attention(model)
    model.train()
    hidden = model(pixel_values=torch.randn(2, 3, 28, 28)).last_hidden_state
    (hidden * torch.randn_like(hidden)).sum().backward()  # a plain sum is constant after LayerNorm
    queries = [p for name, p in model.named_parameters()
               if name.endswith("attention.q_proj.weight")]
    assert queries and all(p.grad is not None and p.grad.abs().sum() > 0 for p in queries)


def test_a_model_that_cannot_swap_attention_is_left_alone() -> None:
    convnet = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    assert not use_matmul_attention(convnet)


def test_the_cpu_encoder_uses_matmul_attention_and_small_batches(tiny_model_dir: Path) -> None:
    encoder = Encoder.from_pretrained(str(tiny_model_dir), device="cpu", precision="fp32")
    assert encoder.backbone.config._attn_implementation == NAME
    assert encoder.batch_size == default_batch_size("cpu") == 8
    assert Encoder.from_pretrained(str(tiny_model_dir), device="cpu", batch_size=3).batch_size == 3
    assert default_batch_size("cuda:0") > default_batch_size("cpu")
