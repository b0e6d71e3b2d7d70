"""Pose maps: shapes, joints in place, consistency with flips and crops, keypoint scaling."""

import numpy as np
import pytest
import torch

from papg_bench.data.batches import Geometry, apply_geometry, random_geometry
from papg_bench.errors import UserError
from papg_bench.pose.keypoints import COLORS, DRAWN_LIMBS, FLIP_PERMUTATION, OPENPOSE18
from papg_bench.pose.maps import load_poses, pose_channels, render_pose_maps, scale_keypoints

# A standing person in a 128 x 64 image, (x, y) per OpenPose-18 joint.
STANDING = {
    "nose": (32, 20), "neck": (32, 34), "r_shoulder": (22, 36), "r_elbow": (18, 52), "r_wrist": (16, 66),
    "l_shoulder": (42, 36), "l_elbow": (46, 52), "l_wrist": (48, 66), "r_hip": (26, 70), "r_knee": (25, 92),
    "r_ankle": (24, 114), "l_hip": (38, 70), "l_knee": (39, 92), "l_ankle": (40, 114), "r_eye": (29, 16),
    "l_eye": (35, 16), "r_ear": (25, 19), "l_ear": (39, 19),
}
H, W = 128, 64


def people(batch: int = 4, seed: int = 0) -> torch.Tensor:
    """Jittered (sub-pixel) standing people, one joint missing in the second person."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.tensor([STANDING[n] for n in OPENPOSE18], dtype=torch.float32)
    kp = torch.ones(batch, 18, 3)
    kp[..., :2] = base + torch.rand(batch, 18, 2, generator=gen) * 2 - 1
    if batch > 1:
        kp[1, OPENPOSE18.index("l_wrist")] = -1
    return kp


def test_channels_shapes_and_ranges():
    assert pose_channels("skeleton") == 3 and pose_channels("heatmaps") == 18
    with pytest.raises(ValueError):
        pose_channels("mesh")
    kp = people()
    skeleton = render_pose_maps(kp, H, W, "skeleton")
    heat = render_pose_maps(kp, H, W, "heatmaps", sigma=3.0)
    assert skeleton.shape == (4, 3, H, W) and skeleton.dtype == torch.float32
    assert heat.shape == (4, 18, H, W)
    assert skeleton.min() == -1 and skeleton.max() == 1  # black background, full colours
    assert 0 <= heat.min() and heat.max() <= 1
    assert render_pose_maps(torch.full((2, 18, 3), -1.0), H, W).eq(-1).all()
    assert render_pose_maps(torch.zeros(0, 18, 3), H, W).shape == (0, 3, H, W)


def test_heatmap_peaks_sit_on_the_joints():
    kp = people()
    heat = render_pose_maps(kp, H, W, "heatmaps", sigma=3.0)
    flat = heat.flatten(2).argmax(-1)
    peak = torch.stack([flat % W, flat // W], dim=-1).float()
    present = kp[..., 2] > 0
    assert ((peak - kp[..., :2]).norm(dim=-1)[present] <= 1.0).all()
    assert heat[1, OPENPOSE18.index("l_wrist")].eq(0).all()  # missing joint: empty channel


def test_skeleton_draws_each_joint_in_its_colour_where_it_is():
    kp = people()
    skeleton = (render_pose_maps(kp, H, W, "skeleton") + 1) / 2
    ys, xs = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    for b in range(len(kp)):
        for j in range(18):
            if kp[b, j, 2] <= 0:
                continue
            x, y = kp[b, j, :2]
            colour = torch.tensor(COLORS[j]).view(3, 1, 1) / 255
            exact = (skeleton[b] - colour).abs().amax(0) < 1e-6
            near = (xs - x).square() + (ys - y).square()
            assert exact[near <= 1.5**2].all(), (b, OPENPOSE18[j])  # the disc around the joint
            blob = exact & (near <= 3**2)
            centre = torch.stack([xs[blob].mean(), ys[blob].mean()])
            assert (centre - kp[b, j, :2]).norm() <= 1.0, (b, OPENPOSE18[j])
    # a limb is a line in its own colour between its joints: the midpoint of neck -> right hip
    k = DRAWN_LIMBS.index((1, 8))
    mid = (kp[0, 1, :2] + kp[0, 8, :2]) / 2
    pixel = skeleton[0, :, int(mid[1].round()), int(mid[0].round())]
    assert torch.allclose(pixel / pixel.max(), torch.tensor(COLORS[k]) / 255, atol=1e-6)
    # the forearm is drawn where the wrist is known, and not where it is missing
    forearm = (np.array(STANDING["l_elbow"]) + np.array(STANDING["l_wrist"])) // 2
    assert skeleton[0, :, forearm[1], forearm[0]].max() > 0.5
    assert skeleton[1, :, forearm[1], forearm[0]].max() == 0


def test_maps_follow_flips():
    kp = people(8, seed=1)
    geometry = random_geometry(8, H, W, pad=0, flip=True, generator=torch.Generator().manual_seed(3))
    assert geometry.flip.any() and not geometry.flip.all()
    moved = geometry.apply_to_keypoints(kp, FLIP_PERMUTATION)
    heat_of_moved = render_pose_maps(moved, H, W, "heatmaps")
    moved_heat = apply_geometry(render_pose_maps(kp, H, W, "heatmaps"), geometry)
    moved_heat = torch.where(geometry.flip.view(-1, 1, 1, 1), moved_heat[:, list(FLIP_PERMUTATION)], moved_heat)
    assert torch.allclose(heat_of_moved, moved_heat, atol=1e-5)
    # skeleton: the same pixels are drawn (left and right swap colours, as their joints swap names)
    drawn_of_moved = render_pose_maps(moved, H, W, "skeleton").amax(1) > -1 + 1e-3
    moved_drawn = apply_geometry(render_pose_maps(kp, H, W, "skeleton") + 1, geometry).amax(1) > 1e-3
    assert torch.equal(drawn_of_moved, moved_drawn)


def test_maps_follow_crops_and_flips():
    kp = people(6, seed=2)
    pad = 4
    geometry = random_geometry(6, H, W, pad=pad, flip=True, generator=torch.Generator().manual_seed(5))
    moved = geometry.apply_to_keypoints(kp, FLIP_PERMUTATION)
    assert (moved[..., 2] > 0).sum() == (kp[..., 2] > 0).sum()  # every joint stays inside
    heat_of_moved = render_pose_maps(moved, H, W, "heatmaps", sigma=2.0)
    moved_heat = apply_geometry(render_pose_maps(kp, H, W, "heatmaps", sigma=2.0), geometry)
    moved_heat = torch.where(geometry.flip.view(-1, 1, 1, 1), moved_heat[:, list(FLIP_PERMUTATION)], moved_heat)
    # compare away from the borders, where the padded map is cut
    inner = (slice(None), slice(None), slice(pad * 2, H - pad * 2), slice(pad * 2, W - pad * 2))
    assert torch.allclose(heat_of_moved[inner], moved_heat[inner], atol=1e-5)
    drawn_of_moved = render_pose_maps(moved, H, W, "skeleton").amax(1) > -1 + 1e-3
    moved_drawn = apply_geometry(render_pose_maps(kp, H, W, "skeleton") + 1, geometry).amax(1) > 1e-3
    assert torch.equal(drawn_of_moved, moved_drawn)


def test_flip_geometry_swaps_named_joints():
    kp = people(1)
    flip = Geometry(pad=0, dx=torch.zeros(1, dtype=torch.long), dy=torch.zeros(1, dtype=torch.long),
                    flip=torch.ones(1, dtype=torch.bool), height=H, width=W)
    moved = flip.apply_to_keypoints(kp, FLIP_PERMUTATION)
    r, l_ = OPENPOSE18.index("r_wrist"), OPENPOSE18.index("l_wrist")
    assert torch.allclose(moved[0, r, 0], W - 1 - kp[0, l_, 0])


def test_scale_keypoints_keeps_missing_and_pixel_centres():
    kp = np.array([[[0, 0, 1], [63, 127, 0.5], [-1, -1, -1]]], dtype=np.float32)
    out = scale_keypoints(kp, (128, 64), (256, 128))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out[0, 0], [0.5, 0.5, 1])  # pixel 0's centre -> between new pixels 0 and 1
    np.testing.assert_allclose(out[0, 1], [126.5, 254.5, 0.5])
    np.testing.assert_array_equal(out[0, 2], [-1, -1, -1])
    back = scale_keypoints(torch.from_numpy(out), (256, 128), (128, 64))
    assert torch.allclose(back, torch.from_numpy(kp))


def test_load_poses_says_how_to_make_them(tmp_path):
    with pytest.raises(UserError, match="papg-bench pose"):
        load_poses(tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_maps_on_cuda_match_cpu():
    kp = people()
    for kind in ("skeleton", "heatmaps"):
        cpu = render_pose_maps(kp, H, W, kind)
        gpu = render_pose_maps(kp.cuda(), H, W, kind)
        assert gpu.device.type == "cuda"
        assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)


def test_joints_outside_the_image_cost_nothing_and_break_nothing():
    kp = people(2)
    far = kp.clone()
    far[0, OPENPOSE18.index("r_ankle"), :2] = torch.tensor([1e6, 3e6])  # a confident joint far away
    far[1, OPENPOSE18.index("nose"), :2] = float("nan")
    far[1, OPENPOSE18.index("nose"), 2] = -1
    skeleton = render_pose_maps(far, H, W, "skeleton")
    assert torch.isfinite(skeleton).all() and torch.isfinite(render_pose_maps(far, H, W, "heatmaps")).all()
    # the shin still leaves the knee towards the far ankle, inside the image
    knee = far[0, OPENPOSE18.index("r_knee"), :2]
    direction = torch.tensor([1.0, 3.0]) / torch.tensor([1.0, 3.0]).norm()
    x, y = (knee + 6 * direction).round().long()
    assert skeleton[0, :, y, x].max() > 0
    no_nose = kp[1:].clone()
    no_nose[0, OPENPOSE18.index("nose")] = -1
    assert torch.equal(skeleton[1], render_pose_maps(no_nose, H, W, "skeleton")[0])  # the NaN joint is just missing
