"""The model contract (DEVELOPING.md): one test class, parametrized over the configurations.

Cheap structural checks run on every configuration on the ``meta`` device (no memory, no
compute); checks that compute run on ``sa2net-tiny``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from napari_sa2net.model import (
    CONFIGS,
    create_model,
    load_model,
    load_state_dict_checked,
    save_checkpoint,
)
from napari_sa2net.model.reach import (
    RECEPTIVE_FIELD_RADIUS,
    _chebyshev_distance,
    centre_gradient,
    suggested_halo,
)
from napari_sa2net.model.sa2net import pad_to_multiple
from napari_sa2net.normalization import Normalization

TINY = "sa2net-tiny"


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class TestSA2NetContract:
    @pytest.mark.parametrize("name", list(CONFIGS))
    @pytest.mark.parametrize("aux", [False, True])
    def test_every_config_maps_shapes(self, name: str, aux: bool) -> None:
        with torch.device("meta"):
            model = create_model(name, in_channels=3, num_classes=3).eval()
            out = model(torch.empty(2, 3, 50, 70), aux=aux)
        outputs = out if aux else (out,)
        assert len(outputs) == (4 if aux else 1)
        assert all(o.shape == (2, 3, 50, 70) for o in outputs)
        assert model.config is CONFIGS[name]

    def test_forward_backward_reaches_every_parameter(self) -> None:
        model = create_model(TINY, in_channels=1, num_classes=3).train()
        x = torch.randn(2, 1, 64, 80)
        outputs = model(x, aux=True)
        assert isinstance(outputs, tuple) and len(outputs) == 4
        sum(o.square().mean() for o in outputs).backward()
        # The reference code's dead modules are gone: every parameter takes part in training.
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        assert unused == []
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    @pytest.mark.parametrize(("in_channels", "num_classes"), [(1, 1), (1, 3), (3, 1), (3, 3)])
    def test_channels_and_classes(self, in_channels: int, num_classes: int) -> None:
        model = create_model(TINY, in_channels=in_channels, num_classes=num_classes).eval()
        with torch.no_grad():
            out = model(torch.randn(1, in_channels, 32, 48))
        assert out.shape == (1, num_classes, 32, 48)
        assert (model.in_channels, model.num_classes) == (in_channels, num_classes)

    @pytest.mark.parametrize("size", [(1, 1), (17, 31), (37, 53), (64, 80), (5, 200)])
    def test_odd_sizes(self, size: tuple[int, int]) -> None:
        model = create_model(TINY, in_channels=1, num_classes=3).eval()
        with torch.no_grad():
            outputs = model(torch.randn(1, 1, *size), aux=True)
        assert all(o.shape == (1, 3, *size) for o in outputs)
        assert all(torch.isfinite(o).all() for o in outputs)

    @pytest.mark.parametrize("size", [(1, 1), (17, 31), (32, 48)])
    def test_padding_window_recovers_the_input(self, size: tuple[int, int]) -> None:
        x = torch.randn(1, 2, *size)
        padded, (top, left, height, width) = pad_to_multiple(x)
        assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
        assert torch.equal(padded[..., top : top + height, left : left + width], x)

    @pytest.mark.parametrize(
        ("x", "match"),
        [
            (torch.zeros(1, 32, 32), "add the batch axis"),
            (torch.zeros(1, 3, 32, 32), "in_channels=3"),
            (torch.zeros(1, 1, 32, 32, dtype=torch.uint8), "x.float"),
            (torch.zeros(1, 1, 0, 32), "at least 1×1"),
        ],
    )
    def test_bad_input_says_how_to_fix_it(self, x: torch.Tensor, match: str) -> None:
        model = create_model(TINY, in_channels=1, num_classes=3)
        with pytest.raises(ValueError, match=match):
            model(x)

    def test_bad_construction_arguments(self) -> None:
        with pytest.raises(ValueError, match="sa2net-paper"):
            create_model("sa2net-huge")
        with pytest.raises(ValueError, match="in_channels"):
            create_model(TINY, in_channels=0)

    def test_logits_not_probabilities(self) -> None:
        model = create_model(TINY, in_channels=1, num_classes=1).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 1, 32, 32) * 10)
        assert out.min() < 0 or out.max() > 1

    def test_eval_is_deterministic(self) -> None:
        model = create_model(TINY, in_channels=3, num_classes=3).eval()
        x = torch.randn(2, 3, 48, 48)
        with torch.no_grad():
            assert torch.equal(model(x), model(x))
            # batch members do not influence each other in eval mode
            assert torch.allclose(model(x[:1]), model(x)[:1], atol=1e-5)

    def test_save_load_round_trip(self, tmp_path) -> None:
        model = create_model(TINY, in_channels=3, num_classes=1).train()
        model(torch.randn(2, 3, 32, 32))  # move the BatchNorm running statistics
        model.eval()
        model.normalization = Normalization(2.0, 99.0)
        model.metadata = {"epochs": 3, "metrics": {"val_dice": 0.5}, "training_data": "x"}
        path = save_checkpoint(model, tmp_path / "sub" / "m.pt")
        assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temporary left over
        loaded = load_model(path)
        assert not loaded.training
        assert loaded.config == model.config and loaded.normalization == model.normalization
        assert loaded.metadata["epochs"] == 3 and loaded.metadata["metrics"]["val_dice"] == 0.5
        assert {"package_version", "created"} <= set(loaded.metadata)
        x = torch.randn(1, 3, 40, 24)
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))
        with pytest.raises(FileExistsError):
            save_checkpoint(model, path, overwrite=False)

    def test_a_centre_map_is_one_more_plane_and_survives_a_round_trip(self, tmp_path) -> None:
        model = create_model(TINY, in_channels=1, num_classes=3, centre=True).eval()
        x = torch.randn(2, 1, 40, 24)
        with torch.no_grad():
            outputs = model(x, aux=True)
            probs = model.probabilities(outputs[0])
        assert model.num_outputs == 4 and all(o.shape == (2, 4, 40, 24) for o in outputs)
        torch.testing.assert_close(probs[:, :3].sum(1), torch.ones(2, 40, 24))
        torch.testing.assert_close(probs[:, 3], torch.sigmoid(outputs[0][:, 3]))
        loaded = load_model(save_checkpoint(model, tmp_path / "c.pt"))
        assert loaded.centre and loaded.num_outputs == 4
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))
        plain = create_model(TINY, in_channels=1, num_classes=3)
        with pytest.raises(ValueError, match="outputs=4"):
            load_state_dict_checked(plain, model.state_dict())
        with pytest.raises(ValueError, match="num_classes=3 or centre=False"):
            create_model(TINY, num_classes=1, centre=True)

    def test_weights_of_another_config_are_refused_with_shapes(self, tmp_path) -> None:
        path = save_checkpoint(create_model(TINY, in_channels=1, num_classes=3), tmp_path / "t.pt")
        other = create_model(TINY, in_channels=3, num_classes=1)
        with pytest.raises(ValueError, match=r"in_channels=1, outputs=3") as info:
            load_state_dict_checked(other, torch.load(path, weights_only=True))
        assert "encoder.stem.0.weight: checkpoint (8, 1, 3, 3) vs model (8, 3, 3, 3)" in str(
            info.value
        )

    def test_non_strict_load_keeps_what_fits(self, tmp_path) -> None:
        source = create_model(TINY, in_channels=1, num_classes=3)
        target = create_model(TINY, in_channels=1, num_classes=1)
        problems = load_state_dict_checked(target, source.state_dict(), strict=False)
        assert problems and all("head" in p for p in problems)
        assert torch.equal(target.encoder.stem[0].weight, source.encoder.stem[0].weight)

    def test_freeze_encoder_keeps_batchnorm_in_eval(self) -> None:
        model = create_model(TINY, in_channels=1, num_classes=3).freeze_encoder()
        model.train()
        assert not model.encoder.training and model.sa2.training
        assert not any(p.requires_grad for p in model.encoder.parameters())
        stats = model.encoder.stem[1].running_mean.clone()
        model(torch.randn(2, 1, 32, 32) + 3.0)
        assert torch.equal(model.encoder.stem[1].running_mean, stats)
        model.freeze_encoder(False)
        assert model.encoder.training
        assert all(p.requires_grad for p in model.encoder.parameters())

    def test_paper_parameter_count(self) -> None:
        with torch.device("meta"):
            model = create_model("sa2net-paper", in_channels=3, num_classes=1)
        assert count(model) == 19_296_596
        # per-module bookkeeping of the specification (SA2NET.md section 7, dead parts dropped)
        sides = count(model.side_projections) + count(model.bottleneck_projection)
        assert (count(model.encoder), sides, count(model.sa2)) == (9_373_824, 2_876_096, 1_017_476)
        ups = [count(getattr(model, f"up{i}")) for i in (4, 3, 2, 1)]
        assert ups == [4_471_299, 1_137_923, 294_531, 124_931]
        assert count(model.head) + count(model.aux_heads) == 516

    def test_paper_cost_at_256(self) -> None:
        with torch.device("meta"):
            model = create_model("sa2net-paper", in_channels=3, num_classes=1).eval()
            x = torch.empty(1, 3, 256, 256)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
        gmac = counter.get_total_flops() / 2 / 1e9
        assert gmac == pytest.approx(45.8, rel=0.02)

    def test_tiny_model_overfits_one_batch(self) -> None:
        model = create_model(TINY, in_channels=1, num_classes=3).train()
        yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
        radius = ((yy - 20) ** 2 + (xx - 26) ** 2).sqrt()
        target = torch.where(radius < 9, 1, torch.where(radius < 12, 2, 0))[None]
        image = (radius < 12).float()[None, None] + 0.1 * torch.randn(1, 1, 48, 48)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(40):
            optimizer.zero_grad()
            loss = sum(F.cross_entropy(o, target) for o in model(image, aux=True))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.2 * losses[0]

    def test_receptive_field_radius_and_halo(self) -> None:
        model = create_model(TINY, in_channels=1, num_classes=1)
        grad = centre_gradient(model, 448)
        assert _chebyshev_distance(448)[grad > 0].max().item() == RECEPTIVE_FIELD_RADIUS
        halo = suggested_halo(model)
        assert halo % 16 == 0 and 32 <= halo <= 208
        assert model.training  # the measurement restores the mode

    @pytest.mark.slow
    def test_paper_config_trains_on_cpu(self) -> None:
        model = create_model("sa2net-paper", in_channels=3, num_classes=1).train()
        outputs = model(torch.randn(2, 3, 48, 64), aux=True)
        sum(o.mean() for o in outputs).backward()
        assert all(o.shape == (2, 1, 48, 64) for o in outputs)
        assert all(p.grad is not None for p in model.parameters())

    @pytest.mark.gpu
    def test_mixed_precision_on_cuda(self) -> None:
        model = create_model("sa2net-paper", in_channels=1, num_classes=3).cuda().train()
        x = torch.randn(2, 1, 96, 80, device="cuda")
        target = torch.zeros(2, 96, 80, dtype=torch.long, device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            outputs = model(x, aux=True)
            loss = sum(F.cross_entropy(o.float(), target) for o in outputs)
        loss.backward()
        assert torch.isfinite(loss) and all(o.shape == (2, 3, 96, 80) for o in outputs)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
