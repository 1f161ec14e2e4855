"""A set of 3D Gaussians in the gsplat / standard-3DGS layout (DESIGN.md section 2).

Fields (N Gaussians, SH degree d, K = (d + 1)^2 coefficients):

- ``means``       [N, 3]    float32, world positions
- ``quats``       [N, 4]    float32, rotations as **wxyz** quaternions (not necessarily unit)
- ``log_scales``  [N, 3]    float32, natural log of the per-axis standard deviations
- ``opacities``   [N]       float32, opacity *logits* (opacity = sigmoid(logit))
- ``sh``          [N, K, 3] float32, SH coefficients; colour = 0.5 + 0.28209479 * sh[:, 0]
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814


def unit_quats(q: Tensor) -> Tensor:
    """[N, 4] wxyz quaternions normalised (float32, CPU); a zero one (some files hold them)
    becomes the identity, as 3DGS renderers read it. What the splat writers store."""
    q = q.detach().cpu().float()
    norm = q.norm(dim=1, keepdim=True)
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0])
    return torch.where(norm > 0, q / norm.clamp_min(1e-30), identity)


def sh_degree_from_k(k: int) -> int:
    d = round(k**0.5) - 1
    if (d + 1) ** 2 != k or not 0 <= d <= 3:
        raise ValueError(f"{k} SH coefficients is not (d+1)^2 for a degree d in 0..3")
    return d


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """[..., 3] colour in [0, 1] -> [..., 3] DC SH coefficient."""
    return (rgb - 0.5) / SH_C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    return sh0 * SH_C0 + 0.5


@dataclass
class Gaussians:
    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] wxyz
    log_scales: Tensor  # [N, 3]
    opacities: Tensor  # [N] logits
    sh: Tensor  # [N, K, 3]

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expect = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "opacities": (n,),
        }
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Gaussians.{name} has shape {got}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"Gaussians.sh has shape {tuple(self.sh.shape)}, expected [N, K, 3]")
        sh_degree_from_k(self.sh.shape[1])

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_k(self.sh.shape[1])

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to(self, *args, **kwargs) -> Gaussians:
        return Gaussians(**{k: v.to(*args, **kwargs) for k, v in self.tensors().items()})

    def detach(self) -> Gaussians:
        return Gaussians(**{k: v.detach() for k, v in self.tensors().items()})

    @staticmethod
    def cat(sets: list[Gaussians]) -> Gaussians:
        names = [f.name for f in fields(Gaussians)]
        return Gaussians(**{k: torch.cat([getattr(s, k) for s in sets]) for k in names})

    @staticmethod
    def empty(sh_degree: int = 0) -> Gaussians:
        k = (sh_degree + 1) ** 2
        z = torch.zeros
        return Gaussians(z(0, 3), z(0, 4), z(0, 3), z(0), z(0, k, 3))
