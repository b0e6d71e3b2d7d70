"""Cross-modality graph reasoning (after Feng, Chen, Ji, Wu, Sun, "Efficient cross-modality graph
reasoning for RGB-infrared person re-identification", IEEE SPL 28, 2021).

No public code exists; this module builds the letter's idea on the AGW backbone (``agw.py``: modality
stems, shared ResNet, non-local blocks) with these choices, each a setting:

- **Part nodes** (``parts``, default 6): the layer-4 map is cut into ``parts`` horizontal stripes, each
  GeM-pooled (p as the global feature) and projected to ``part_dim`` channels (linear + BN + ReLU).
- **Edges**: a node's candidate neighbours are the parts of its own image and, during training only,
  every part node of the images of the *other* modality in the (per-process) batch. Edge weights are a
  softmax over the scaled cosine similarities (``graph_scale``) of the ``graph_topk`` most similar
  candidates; the others get weight 0. Similarities come from the projected nodes once per forward
  (the simpler of the open choices: the graph is not rebuilt between layers).
- **Reasoning**: ``graph_layers`` residual graph convolutions ``h <- h + ReLU(BN(W (A h)))``.
- **Read-out**: an image's part nodes are averaged and concatenated to its global GeM feature; BNNeck and
  classifier on the concatenation; identity CE + weighted regularized triplet as AGW.
- **Test**: each image reasons over its own parts only (the same softmax form, candidates = own
  parts), so a test feature never depends on which other images share its batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from papg_bench.errors import UserError
from papg_bench.reid_baselines.agw import NonLocalBackbone
from papg_bench.reid_baselines.layers import GeM, bnneck, classifier, gem_pool


class GraphConv(nn.Module):
    """Residual graph convolution over node features ``h`` (N x D) with a row-stochastic adjacency."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim, bias=False)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return h + F.relu(self.bn(self.linear(adjacency @ h)))


def part_adjacency(nodes: torch.Tensor, image_of_node: torch.Tensor, modality_of_node: torch.Tensor,
                   cross_modality: bool, topk: int, scale: float) -> torch.Tensor:
    """Row-stochastic N x N adjacency over part nodes.

    Candidates of a node: the nodes of its own image, plus (``cross_modality``) every node of an image of
    the other modality. Each row keeps its ``topk`` most similar candidates and softmaxes their scaled
    cosine similarities.
    """
    unit = F.normalize(nodes.float(), dim=1)
    sim = scale * (unit @ unit.t())
    candidates = image_of_node.view(-1, 1) == image_of_node.view(1, -1)
    if cross_modality:
        candidates = candidates | (modality_of_node.view(-1, 1) != modality_of_node.view(1, -1))
    masked = sim.masked_fill(~candidates, float("-inf"))
    k = min(topk, nodes.shape[0])
    kth = masked.topk(k, dim=1).values[:, -1:]
    keep = candidates & (masked >= kth)
    return torch.softmax(sim.masked_fill(~keep, float("-inf")), dim=1).to(nodes.dtype)


class CGRNet(nn.Module):
    """``forward(images, modalities)`` -> ``{"pooled", "bn", "logits"}`` (pooled = [global, graph])."""

    def __init__(self, cfg: Any, num_classes: int) -> None:
        super().__init__()
        if cfg.parts < 1 or cfg.graph_layers < 0 or cfg.graph_topk < 1 or cfg.part_dim < 1:
            raise UserError("--parts, --graph-topk and --part-dim must be at least 1, --graph-layers at least 0.")
        self.backbone = NonLocalBackbone(cfg)
        channels = self.backbone.out_channels
        self.p = cfg.gem_p
        self.parts = cfg.parts
        self.topk, self.scale = cfg.graph_topk, cfg.graph_scale
        self.pool = GeM(cfg.gem_p)
        self.part_proj = nn.Sequential(nn.Linear(channels, cfg.part_dim, bias=False),
                                       nn.BatchNorm1d(cfg.part_dim), nn.ReLU(inplace=True))
        self.graph = nn.ModuleList([GraphConv(cfg.part_dim) for _ in range(cfg.graph_layers)])
        dim = channels + cfg.part_dim
        self.bottleneck = bnneck(dim)
        self.classifier = classifier(dim, num_classes)
        self.feature_dim = dim

    def head_modules(self) -> list[nn.Module]:
        return [self.part_proj, self.graph, self.bottleneck, self.classifier]

    def part_features(self, fmap: torch.Tensor) -> torch.Tensor:
        """B x P x C: GeM over each of ``parts`` horizontal stripes of the layer-4 map."""
        if fmap.shape[2] < self.parts:
            raise UserError(
                f"--parts {self.parts}: the layer-4 map has only {fmap.shape[2]} rows at this image size; "
                "use fewer parts or a taller --size."
            )
        return gem_pool(fmap, self.p, parts=self.parts).squeeze(-1).transpose(1, 2)

    def forward(self, images: torch.Tensor, modalities: torch.Tensor) -> dict[str, torch.Tensor]:
        fmap = self.backbone(images, modalities)
        b = fmap.shape[0]
        global_feature = self.pool(fmap)
        nodes = self.part_proj(self.part_features(fmap).reshape(b * self.parts, -1))
        image_of_node = torch.arange(b, device=nodes.device).repeat_interleave(self.parts)
        adjacency = part_adjacency(nodes, image_of_node, modalities.repeat_interleave(self.parts),
                                   cross_modality=self.training, topk=self.topk, scale=self.scale)
        for layer in self.graph:
            nodes = layer(nodes, adjacency)
        graph_feature = nodes.view(b, self.parts, -1).mean(dim=1)
        pooled = torch.cat([global_feature, graph_feature.float()], dim=1)
        bn = self.bottleneck(pooled)
        return {"pooled": pooled, "bn": bn, "logits": self.classifier(bn)}


def build(cfg: Any, num_classes: int) -> CGRNet:
    return CGRNet(cfg, num_classes)
