"""Attention as two plain batched matmuls, for transformer backbones on the CPU.

PyTorch's fused scaled-dot-product attention has a CPU kernel that is slow in
bf16; two batched matmuls through oneDNN compute the same embeddings much faster
(docs/performance.md, "Attention"). Transformers lets a model swap its attention
function through ``AttentionInterface``; models that do not support that keep their own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

NAME = "lookalike_matmul"


def matmul_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """softmax(q kᵀ · scale + mask) v on (batch, heads, tokens, head_dim) tensors.

    The scale goes on the query (tokens x head_dim), not on the scores (tokens²),
    and the output stays a transposed view: the caller reshapes it anyway.
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query * scaling, key.transpose(2, 3))
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1)
    if dropout and module.training:
        weights = nn.functional.dropout(weights, p=dropout)
    return torch.matmul(weights, value).transpose(1, 2), None


def use_matmul_attention(model: nn.Module) -> bool:
    """Switch ``model`` to :func:`matmul_attention` where it can swap; True if it did."""
    if not getattr(model, "_supports_attention_backend", False):
        return False
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, matmul_attention)
    model.set_attn_implementation(NAME)  # type: ignore[operator]
    return getattr(model.config, "_attn_implementation", None) == NAME
