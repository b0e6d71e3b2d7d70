"""Winograd F(2x2, 3x3) convolution: the same 3x3 convolution with 2.25x fewer multiply-adds.

The residual trunk's 3x3 convolutions are most of a PAPG training step on a CPU, and oneDNN's bf16
kernels already run them near the cores' peak, so the remaining lever is doing less arithmetic. Lavin &
Gray's minimal filtering algorithm computes each 2x2 output tile from a 4x4 input tile with 16
element-wise products per channel pair instead of 36: transform the input tiles (``B^T d B``) and the
weights (``G g G^T``), multiply channel matrices at each of the 16 tile positions (one batched GEMM), and
transform back (``A^T m A``). The transforms are additions and halvings written as tensor slices, so
autograd gives the exact gradient of the same computation, and ``torch.compile`` fuses them into a few
loops; in eager mode their memory traffic costs more than the GEMM saves.

Only for 3x3, stride 1, no padding (the trunk pads by reflection first), even output height and width;
anything else takes :func:`torch.nn.functional.conv2d`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

# G of F(2x2, 3x3): 3 filter taps -> 4 transformed taps
_FILTER_TRANSFORM = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def _input_transform_1d(t: list[torch.Tensor]) -> list[torch.Tensor]:
    """B^T d for the four taps of a tile along one axis."""
    return [t[0] - t[2], t[1] + t[2], t[2] - t[1], t[1] - t[3]]


def _output_transform_1d(m: list[torch.Tensor]) -> list[torch.Tensor]:
    """A^T m for the four transformed taps along one axis."""
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def winograd_applies(x: torch.Tensor, weight: torch.Tensor, stride: tuple, padding: tuple | str,
                     dilation: tuple, groups: int) -> bool:
    out_h, out_w = x.shape[-2] - 2, x.shape[-1] - 2
    return (x.dim() == 4 and tuple(weight.shape[-2:]) == (3, 3) and tuple(stride) == (1, 1)
            and padding in ((0, 0), "valid") and tuple(dilation) == (1, 1) and groups == 1
            and out_h > 0 and out_w > 0 and out_h % 2 == 0 and out_w % 2 == 0)


def winograd_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` for a 3x3 kernel, stride 1, no padding, even output size."""
    if torch.is_autocast_enabled(x.device.type):  # transform in the GEMM's precision: half the memory traffic
        x = x.to(torch.get_autocast_dtype(x.device.type))
    b, c_in, height, width = x.shape
    c_out = weight.shape[0]
    out_h, out_w = height - 2, width - 2
    tiles_h, tiles_w = out_h // 2, out_w // 2

    # input tiles start every 2 pixels and span 4: tap k of every tile is one strided slice
    rows = _input_transform_1d([x[:, :, k:k + out_h:2] for k in range(4)])
    taps = [v for row in rows for v in _input_transform_1d([row[..., k:k + out_w:2] for k in range(4)])]
    tiles = torch.stack(taps).permute(0, 1, 3, 4, 2).reshape(16, b * tiles_h * tiles_w, c_in)

    g = weight.new_tensor(_FILTER_TRANSFORM)
    filters = torch.einsum("ak,oikl,bl->abio", g, weight, g).reshape(16, c_in, c_out)

    products = torch.bmm(tiles, filters.to(tiles.dtype)).view(4, 4, b, tiles_h, tiles_w, c_out)
    out_rows = _output_transform_1d(list(products.unbind(0)))
    quads = [torch.stack(_output_transform_1d(list(row.unbind(0))), dim=3) for row in out_rows]
    y = torch.stack(quads, dim=2).reshape(b, out_h, out_w, c_out).permute(0, 3, 1, 2)
    return y if bias is None else y + bias.to(y.dtype).view(1, -1, 1, 1)


class Conv3x3(nn.Conv2d):
    """An ``nn.Conv2d(channels_in, channels_out, 3)`` (same parameters and state dict) that runs the Winograd
    algorithm where ``winograd`` is set and it applies (see :func:`use_winograd`)."""

    winograd: bool = False

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.winograd and winograd_applies(x, self.weight, self.stride, self.padding, self.dilation,
                                              self.groups):
            return winograd_conv3x3(x, self.weight, self.bias)
        return super().forward(x)


def use_winograd(module: nn.Module, enabled: bool = True) -> int:
    """Switch every :class:`Conv3x3` in ``module``; returns how many there are."""
    convs = [m for m in module.modules() if isinstance(m, Conv3x3)]
    for conv in convs:
        conv.winograd = enabled
    return len(convs)
