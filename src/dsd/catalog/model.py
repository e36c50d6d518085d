"""ModelSpec: a decoder-only transformer's architecture, enough to cost its forward pass."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Architecture numbers from a model's published config.

    `family` names the tokenizer: a draft can serve a target only within one family.
    `intermediate` is the per-branch width of the gated (SwiGLU) MLP (the width of the one
    up-projection when `gated_mlp` is false). `parallel_block`: attention and MLP read the
    same normed input (GPT-J / Phi style), so a layer has one norm, not two.
    """

    name: str
    family: str
    params_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied_embeddings: bool = False
    gated_mlp: bool = True
    parallel_block: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def num_params(self) -> int:
        return int(round(self.params_b * 1e9))

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def forward_params(self) -> int:
        """Parameters touched by a forward pass: all but an untied input embedding table,
        whose lookup reads only a few rows (the LM head still counts)."""
        if self.tied_embeddings:
            return self.num_params
        return self.num_params - self.embedding_params

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """K and V for every layer, one token."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes

    def weight_bytes(self, dtype_bytes: int = 2) -> int:
        return self.num_params * dtype_bytes

    def estimated_params(self) -> int:
        """Parameter count implied by the layer shapes (biases ignored: < 0.1%)."""
        q_width = self.heads * self.head_dim
        kv_width = self.kv_heads * self.head_dim
        attn = self.hidden * q_width + 2 * self.hidden * kv_width + q_width * self.hidden
        mlp = (3 if self.gated_mlp else 2) * self.hidden * self.intermediate  # (gate,) up, down
        norms = (1 if self.parallel_block else 2) * self.hidden
        per_layer = attn + mlp + norms
        head = 0 if self.tied_embeddings else self.embedding_params
        return self.layers * per_layer + self.embedding_params + head + self.hidden

    def can_draft_for(self, target: ModelSpec) -> bool:
        """Speculation needs a shared tokenizer, i.e. the same family."""
        return self.family == target.family
