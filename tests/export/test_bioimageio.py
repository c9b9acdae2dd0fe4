"""bioimage.io export and import: bioimageio.core's own test, round trip, refusals, safety."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

import napari_sa2net as sa2
from napari_sa2net.cli import main
from napari_sa2net.io import read_labels

SAMPLE = Path(sa2.__file__).parent / "_sample_data" / "nuclei_fluo.tif"


def _needs_spec():
    pytest.importorskip(
        "bioimageio.spec",
        reason="bioimageio.spec missing: pip install 'napari-sa2net[bioimageio]'",
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The bundled model exported with a fixed halo (measuring it costs seconds)."""
    _needs_spec()
    from napari_sa2net.export import export_bioimageio

    out = tmp_path_factory.mktemp("pkg") / "nuclei-fluo.zip"
    result = export_bioimageio("nuclei-fluo", out, halo=32)
    assert result.path == out and result.size_bytes == out.stat().st_size
    return out


def _rdf(path):
    with zipfile.ZipFile(path) as archive:
        return yaml.safe_load(archive.read("rdf.yaml")), archive.namelist()


def _rewrite(src, dst, edit=None, replace=None):
    """Copy a package, editing its rdf.yaml (``edit(dict)``) or replacing members."""
    replace = dict(replace or {})
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == "rdf.yaml" and edit is not None:
                rdf = yaml.safe_load(data)
                edit(rdf)
                data = yaml.safe_dump(rdf).encode()
            new.writestr(name, replace.pop(name, data))
    return dst


def test_bioimageio_test_command_passes(package, tmp_path):
    pytest.importorskip(
        "bioimageio.core",
        reason="bioimageio.core missing: pip install 'napari-sa2net[bioimageio]'",
    )
    # `bioimageio test PKG.zip`, the command of the issue, with its summary as JSON.
    command = [sys.executable, "-m", "bioimageio.core", "test", str(package)]
    run = subprocess.run([*command, "--summary", str(tmp_path / "summary.json")],
                         capture_output=True, text=True)  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    failed = [d["name"] for d in summary["details"] if d["status"] == "failed"]
    assert run.returncode == 0 and summary["status"] == "passed", failed or run.stderr[-2000:]
    # Both weight formats reproduced the test outputs and ran at the other declared sizes.
    names = [d["name"] for d in summary["details"]]
    for weights in ("pytorch_state_dict", "torchscript"):
        assert f"Reproduce test outputs from test inputs ({weights})" in names
        assert sum(n.startswith(f"Run {weights} inference") for n in names) == 6


def test_package_holds_what_the_issue_asks(package):
    rdf, names = _rdf(package)
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    weights = rdf["weights"]
    assert weights["torchscript"]["parent"] == "pytorch_state_dict"
    arch = weights["pytorch_state_dict"]["architecture"]
    assert arch["callable"] == "SA2NetProbabilities" and len(arch["sha256"]) == 64
    assert arch["kwargs"] == {"width": 16, "in_channels": 1, "num_classes": 3,
                              "name": "sa2net-small", "centre": False}  # fmt: skip
    [inp], [out] = rdf["inputs"], rdf["outputs"]
    [scale] = [p for p in inp["preprocessing"] if p["id"] == "scale_range"]
    assert scale["kwargs"]["axes"] == ["y", "x"]
    assert (scale["kwargs"]["min_percentile"], scale["kwargs"]["max_percentile"]) == (1.0, 99.8)
    assert [a.get("halo") for a in out["axes"][2:]] == [32, 32]
    assert inp["axes"][2]["size"] == {"min": 80, "step": 16}
    assert rdf["cite"][0]["doi"] == "10.48550/arXiv.2309.16661"
    assert {"cover.png", "README.md", "LICENSE-mnfinder.txt", "sample_input.tif"} <= set(names)
    with zipfile.ZipFile(package) as archive:
        card = archive.read("README.md").decode()
        test_input = np.load(io.BytesIO(archive.read("test_input.npy")))
    assert "seed" in card and "watershed" in card and "scale_range" in card
    assert "## Validation" in card and "MIT" in card and "mnfinder" in card
    # The test input is a raw 256² window of the bundled sample (on the 32-px search grid).
    sample, window = tifffile.imread(SAMPLE), test_input[0, 0]
    assert window.shape == (256, 256)
    origins = [(y, x) for y in range(0, 257, 32) for x in range(0, 257, 32)
               if np.array_equal(sample[y : y + 256, x : x + 256], window)]  # fmt: skip
    assert len(origins) == 1


def test_package_loads_back_and_segments_like_its_checkpoint(package, tmp_path):
    net = sa2.load_model(package)
    base = sa2.load_model("nuclei-fluo")
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in base.state_dict().items())
    assert net.normalization == base.normalization and net.checkpoint_path == package
    image = tifffile.imread(SAMPLE)[:160, :160]
    expected = sa2.segment(image, model="nuclei-fluo").labels
    assert expected.max() > 3
    np.testing.assert_array_equal(sa2.segment(image, model=package).labels, expected)
    tifffile.imwrite(tmp_path / "crop.tif", image)
    args = ["segment", str(tmp_path / "crop.tif"), "--out", str(tmp_path / "out")]
    assert main([*args, "--model", str(package), "--device", "cpu"]) == 0
    labels, meta = read_labels(tmp_path / "out" / "crop.tif")
    np.testing.assert_array_equal(np.asarray(labels), expected)
    assert meta["model"]["name"] == str(package)


def test_another_architecture_is_refused_in_one_line(package, tmp_path):
    def foreign(rdf):
        del rdf["config"]["napari_sa2net"]
        rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] = "UNet2d"
        rdf["name"] = "some unet"

    other = _rewrite(package, tmp_path / "other.zip", edit=foreign)
    with pytest.raises(ValueError, match="another architecture") as err:
        sa2.load_model(other)
    message = str(err.value)
    assert "\n" not in message and "'some unet'" in message and "sa2net export" in message
    assert main(["segment", str(SAMPLE), "--out", str(tmp_path), "--model", str(other)]) == 2


def test_loading_a_package_runs_none_of_its_code(package, tmp_path):
    marker = tmp_path / "ran"
    hostile = f"open({str(marker)!r}, 'w').close()\n".encode()
    replace = {"sa2net_architecture.py": hostile, "weights_torchscript.pt": b"not torchscript"}
    tampered = _rewrite(package, tmp_path / "t.zip", replace=replace)
    assert sa2.load_model(tampered).num_classes == 3  # neither file is read
    assert not marker.exists()

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    def fake_hash(rdf):  # a consistent sha256, so only weights_only stands in the way
        import hashlib

        digest = hashlib.sha256(pickle.dumps(Payload())).hexdigest()
        rdf["weights"]["pytorch_state_dict"]["sha256"] = digest

    evil = _rewrite(package, tmp_path / "e.zip", edit=fake_hash,
                    replace={"weights.pt": pickle.dumps(Payload())})  # fmt: skip
    with pytest.raises(ValueError, match="unreadable weights"):
        sa2.load_model(evil)
    assert not marker.exists()
    damaged = _rewrite(package, tmp_path / "d.zip", replace={"weights.pt": b"x" * 10})
    with pytest.raises(ValueError, match="sha256"):
        sa2.load_model(damaged)


def test_a_zip_that_is_no_package_and_a_missing_one(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="not a readable napari-sa2net checkpoint"):
        sa2.load_model(tmp_path / "x.zip")
    with pytest.raises(ValueError, match="does not exist"):
        sa2.load_model("missing.zip")


def test_finetuned_model_exports_its_parent_and_fixed_normalization(tmp_path):
    _needs_spec()
    from napari_sa2net._progress import run_job
    from napari_sa2net.engine import finetune_job
    from napari_sa2net.export import export_bioimageio

    image = tifffile.imread(SAMPLE)[:96, :96]
    labels = sa2.segment(image, model="nuclei-fluo").labels
    fast = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 1, "crop": 64, "device": "cpu"}
    run_job(finetune_job(sa2.load_model("nuclei-fluo"), image, labels, out=tmp_path / "ft.pt",
                         val_fraction=0.0, **fast))  # fmt: skip
    parent = torch.load(tmp_path / "ft.pt", weights_only=True)["metadata"]["parent"]
    assert parent["name"] == "nuclei-fluo" and parent["bundled"] and len(parent["sha256"]) == 64
    out = export_bioimageio(tmp_path / "ft.pt", tmp_path / "ft.zip", halo=32,
                            fixed_normalization=SAMPLE, authors=("A. Tester",))  # fmt: skip
    assert out.normalization == "fixed scale_linear"
    rdf, names = _rdf(out.path)
    assert rdf["parent"]["id"] == "napari-sa2net/nuclei-fluo"
    assert rdf["authors"] == [{"name": "A. Tester"}]
    assert "LICENSE-mnfinder.txt" in names  # the parent's data notice travels with the child
    [linear] = [p for p in rdf["inputs"][0]["preprocessing"] if p["id"] == "scale_linear"]
    low, high = np.percentile(tifffile.imread(SAMPLE), [1.0, 99.8])
    assert linear["kwargs"]["gain"] == pytest.approx(1 / (high - low))
    assert linear["kwargs"]["offset"] == pytest.approx(-low / (high - low))
    core = pytest.importorskip("bioimageio.core", reason="bioimageio.core missing")
    summary = core.test_model(out.path, weight_format="torchscript")
    assert summary.status == "passed", [d.name for d in summary.details if d.status == "failed"]
    # A package loads back with the checkpoint's own (per-image) normalization and parent.
    net = sa2.load_model(out.path)
    assert net.metadata["parent"]["sha256"] == parent["sha256"]
    assert net.normalization == sa2.load_model("nuclei-fluo").normalization


def test_architecture_file_is_the_network_and_stands_alone(tmp_path):
    import importlib.util

    from napari_sa2net.export.architecture import architecture_kwargs, architecture_source

    base = sa2.load_model("nuclei-fluo")
    path = tmp_path / "arch.py"
    path.write_text(architecture_source())
    assert "napari_sa2net" not in "".join(
        line for line in path.read_text().splitlines() if line.startswith(("import", "from"))
    )
    spec = importlib.util.spec_from_file_location("standalone_arch", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["standalone_arch"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        net = module.SA2NetProbabilities(**architecture_kwargs(base)).eval()
    finally:
        del sys.modules["standalone_arch"]
    net.load_state_dict(base.state_dict())
    x = torch.rand(1, 1, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.softmax(base(x), dim=1))


def test_importing_the_export_and_cli_loads_no_torch_or_bioimageio():
    code = (
        "import sys, napari_sa2net, napari_sa2net.export, napari_sa2net.cli.export;"
        "from napari_sa2net.cli import build_parser; build_parser();"
        "print(sorted(m for m in ('torch', 'bioimageio.spec') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_export_errors_name_the_fix(tmp_path, monkeypatch, capsys):
    from napari_sa2net.export import export_bioimageio

    assert main(["export", "nuclei-fluo", "--out", str(tmp_path / "m.tar")]) == 2
    assert "must end in .zip" in capsys.readouterr().err
    with pytest.raises(ValueError, match="multiple of 8"):
        export_bioimageio("nuclei-fluo", tmp_path / "m.zip", halo=5)
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)  # as if not installed
    with pytest.raises(ValueError, match=r"pip install 'napari-sa2net\[bioimageio\]'"):
        export_bioimageio("nuclei-fluo", tmp_path / "m.zip")
    assert not (tmp_path / "m.zip").exists()


def test_binary_rgb_model_exports_with_the_he_sample(tmp_path):
    _needs_spec()
    from napari_sa2net.export import export_bioimageio
    from napari_sa2net.model import create_model, save_checkpoint

    torch.manual_seed(0)
    path = save_checkpoint(create_model("sa2net-tiny", 3, 1), tmp_path / "my.rgb_v2.pt")
    result = export_bioimageio(path, tmp_path / "rgb.zip", halo=16, test_size=64)
    rdf, _ = _rdf(result.path)
    assert rdf["name"] == "SA2-Net my-rgb_v2"  # "." is no name character of the spec
    [inp], [out] = rdf["inputs"], rdf["outputs"]
    assert inp["axes"][1]["channel_names"] == ["red", "green", "blue"]
    assert out["axes"][1]["channel_names"] == ["foreground"]
    assert "semantic-segmentation" in rdf["tags"] and rdf.get("parent") is None
    with zipfile.ZipFile(result.path) as archive:
        probs = np.load(io.BytesIO(archive.read("test_output.npy")))
        card = archive.read("README.md").decode()
    assert probs.shape == (1, 1, 64, 64) and probs.min() >= 0 and probs.max() <= 1
    assert "he_region.tif" in card and "own images" in card  # no bundled data notice here
    assert sa2.load_model(result.path).num_classes == 1


def test_a_centre_model_exports_its_centre_map_and_loads_back(tmp_path):
    _needs_spec()
    from napari_sa2net.export import export_bioimageio
    from napari_sa2net.model import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("sa2net-tiny", 1, 3, centre=True)
    path = save_checkpoint(model, tmp_path / "centre.pt")
    result = export_bioimageio(path, tmp_path / "centre.zip", halo=16, test_size=64)
    rdf, _ = _rdf(result.path)
    [out] = rdf["outputs"]
    assert out["axes"][1]["channel_names"] == ["background", "interior", "boundary", "centre"]
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["centre"] is True
    with zipfile.ZipFile(result.path) as archive:
        probs = np.load(io.BytesIO(archive.read("test_output.npy")))
        card = archive.read("README.md").decode()
    assert probs.shape == (1, 4, 64, 64)
    np.testing.assert_allclose(probs[0, :3].sum(0), 1.0, atol=1e-5)
    assert "centre > 0.5" in card
    loaded = sa2.load_model(result.path)
    assert loaded.centre and loaded.num_outputs == 4
