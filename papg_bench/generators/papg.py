"""The PAPG networks: pose-conditioned ResNet generators with non-local attention, and discriminators.

Faithful to the released PAPG code (a CycleGAN generator whose residual blocks are each followed by an
embedded-dot-product non-local block) with two changes that do not change the function computed:

* ``attention_norm="dot"`` (the released code: affinity divided by the number of positions N) is
  evaluated in the associative order ``theta (phi^T g) / N``, O(N C^2), instead of
  ``(theta phi^T) g / N``, O(N^2 C): at 288x144 (N = 72 x 36 = 2592, C = 128) that is 20x fewer
  multiply-adds and no N x N matrix in memory.
* ``attention_norm="softmax"`` (the paper's figure) runs the fused kernel
  :func:`torch.nn.functional.scaled_dot_product_attention` with scale 1 (embedded Gaussian).

The residual trunk's 3x3 convolutions can also run the Winograd algorithm (:mod:`.winograd`, the
trainer's ``winograd`` switch): the same convolution in fewer multiply-adds, for CPU training under
``torch.compile``.

Initialisation (:func:`init_weights`, the ``init`` setting): ``paper`` is the released ``train.py``'s
``weights_init_normal`` (convolution weights N(0, 0.02); batch-norm weights N(1, 0.02), biases 0), so the
non-local blocks contribute from the first step; ``zero-bn`` keeps the non-local output batch norm at
zero, as the non-local paper does, so every block starts as the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from papg_bench.errors import UserError
from papg_bench.generators.winograd import Conv3x3
from papg_bench.training import at_least_fp32

ATTENTION_NORMS = ("dot", "softmax")
POSE_MAPS = ("skeleton", "heatmaps")
INITS = ("paper", "zero-bn")


class NonLocalBlock(nn.Module):
    """Embedded-dot-product non-local block (Wang et al. 2018) with a zero-initialised residual branch."""

    def __init__(self, channels: int, norm: str = "dot", reduction: int = 2) -> None:
        super().__init__()
        if norm not in ATTENTION_NORMS:
            raise UserError(f"--attention-norm {norm!r} is not known: choose dot or softmax.")
        self.norm = norm
        self.inter = channels // reduction
        self.theta = nn.Conv2d(channels, self.inter, 1)
        self.phi = nn.Conv2d(channels, self.inter, 1)
        self.g = nn.Conv2d(channels, self.inter, 1)
        self.out = nn.Conv2d(self.inter, channels, 1)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def attend(self, theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """B x N x C' queries, keys, values -> B x N x C' responses."""
        if self.norm == "softmax":
            return F.scaled_dot_product_attention(theta, phi, g, scale=1.0)
        # theta (phi^T g) / N == (theta phi^T / N) g, the released code's order, by associativity.
        return theta @ (phi.transpose(1, 2) @ g) / phi.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        # theta, phi and g as one 1x1 convolution (one GEMM instead of three; the same parameters)
        weight = torch.cat([self.theta.weight, self.phi.weight, self.g.weight])
        bias = torch.cat([self.theta.bias, self.phi.bias, self.g.bias])
        projected = F.conv2d(x, weight, bias).flatten(2).transpose(1, 2)
        theta, phi, g = projected.split(self.inter, dim=2)
        y = self.attend(theta, phi, g).transpose(1, 2).reshape(b, self.inter, h, w)
        return x + self.bn(self.out(y))


class ResidualBlock(nn.Module):
    """Two reflection-padded 3x3 convs with instance norm, a residual, then (optionally) non-local attention."""

    def __init__(self, channels: int, attention: bool, attention_norm: str = "dot") -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), Conv3x3(channels, channels), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), Conv3x3(channels, channels), nn.InstanceNorm2d(channels),
        )
        self.non_local = NonLocalBlock(channels, attention_norm) if attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.conv_block(x)
        return self.non_local(x) if self.non_local is not None else x


class Generator(nn.Module):
    """Image (3) [+ pose map] -> image (3) in [-1, 1]: 7x7 conv, 2 downsamplings, residual trunk, 2 upsamplings."""

    def __init__(self, pose_channels: int = 3, channels: int = 64, blocks: int = 9, attention: bool = True,
                 attention_norm: str = "dot") -> None:
        super().__init__()
        self.pose_channels = pose_channels
        c = channels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3 + pose_channels, c, 7), nn.InstanceNorm2d(c),
                                   nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(c * mult, c * mult * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(c * mult * 2),
                       nn.ReLU(True)]
        layers += [ResidualBlock(c * 4, attention, attention_norm) for _ in range(blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(c * mult, c * mult // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(c * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        if self.pose_channels:
            if pose is None:
                raise ValueError("this generator is pose-conditioned: pass the pose map")
            image = torch.cat((image, pose.to(image.dtype)), dim=1)
        return self.model(image)


class Discriminator(nn.Module):
    """4x4 convs 64-128-256-512 (stride 2, 2, 2, 1), instance norm, LeakyReLU 0.2, a 4x4 conv to 1, mean over space."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        c = channels
        self.model = nn.Sequential(
            nn.Conv2d(3, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(c, c * 2, 4, stride=2, padding=1), nn.InstanceNorm2d(c * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(c * 2, c * 4, 4, stride=2, padding=1), nn.InstanceNorm2d(c * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(c * 4, c * 8, 4, padding=1), nn.InstanceNorm2d(c * 8), nn.LeakyReLU(0.2, True),
            nn.Conv2d(c * 8, 1, 4, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return at_least_fp32(self.model(x)).mean(dim=(2, 3)).flatten()


def init_weights(module: nn.Module, init: str = "paper") -> None:
    """Convolution weights N(0, 0.02) (biases keep PyTorch's default); batch norms (the non-local output's)
    N(1, 0.02) weights and zero biases for ``paper``, zero weights and biases for ``zero-bn``."""
    if init not in INITS:
        raise UserError(f"--init {init!r} is not known: choose paper (the released code) or zero-bn.")
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            if init == "paper":
                nn.init.normal_(m.weight, 1.0, 0.02)
            else:
                nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)


class GeneratorPair(nn.Module):
    """Both generators, and the whole generator pass of one CycleGAN step as one forward.

    One forward per step keeps DistributedDataParallel simple (one reduction per backward) and lets the
    caller wrap this module once.
    """

    def __init__(self, v2i: Generator, i2v: Generator) -> None:
        super().__init__()
        self.v2i = v2i
        self.i2v = i2v

    def forward(self, real_v: torch.Tensor, pose_v: torch.Tensor | None, real_i: torch.Tensor,
                pose_i: torch.Tensor | None) -> dict[str, torch.Tensor]:
        fake_i = self.v2i(real_v, pose_v)
        fake_v = self.i2v(real_i, pose_i)
        return {
            "fake_i": fake_i,
            "fake_v": fake_v,
            "rec_v": self.i2v(fake_i, pose_v),  # infrared under V's pose, back to visible
            "rec_i": self.v2i(fake_v, pose_i),
            "idt_i": self.v2i(real_i, pose_i),  # given its own output modality, a generator must keep it
            "idt_v": self.i2v(real_v, pose_v),
        }


class DiscriminatorPair(nn.Module):
    """``d_v`` judges visible images, ``d_i`` infrared ones; one forward for both (DDP)."""

    def __init__(self, d_v: Discriminator, d_i: Discriminator) -> None:
        super().__init__()
        self.d_v = d_v
        self.d_i = d_i

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d_v(visible), self.d_i(infrared)


def build_networks(pose_channels: int, channels: int, disc_channels: int, blocks: int, attention: bool,
                   attention_norm: str, init: str = "paper") -> tuple[GeneratorPair, DiscriminatorPair]:
    """Both generators and both discriminators, initialised by :func:`init_weights` (``paper``: as the
    released code does)."""
    gens = GeneratorPair(*(Generator(pose_channels, channels, blocks, attention, attention_norm) for _ in range(2)))
    discs = DiscriminatorPair(Discriminator(disc_channels), Discriminator(disc_channels))
    init_weights(gens, init)
    init_weights(discs, init)
    return gens, discs


# --- batch norm across ranks (DDP) --------------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum over ranks is the sum over ranks of the gradients."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.clone()
        dist.all_reduce(total)
        return total


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch of every rank.

    :class:`torch.nn.SyncBatchNorm` runs only on accelerators; this one all-reduces (sum, sum of squares,
    count) with a differentiable all-reduce and therefore runs with gloo on the CPU too. With DDP
    averaging gradients, the result equals one process on the global batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = at_least_fp32(x)
        count = torch.tensor([xf.numel() / xf.shape[1]], device=x.device, dtype=xf.dtype)
        local = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)), count])
        total = _AllReduceSum.apply(local)
        c = x.shape[1]
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), momentum)
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch norms see the global batch under DDP: SyncBatchNorm on GPUs, :class:`CrossRankBatchNorm2d` on CPUs."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = CrossRankBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                               child.track_running_stats)
            replacement.load_state_dict(child.state_dict())
            replacement.to(child.weight.device if child.affine else device)
            setattr(module, name, replacement)
        else:
            sync_batchnorm(child, device)
    return module
