"""Loading a .pt never runs code from it: a pickle payload is refused with one line."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sa2net.errors import user_message
from napari_sa2net.model import create_model, load_model, save_checkpoint
from napari_sa2net.model.safe_load import load_plain, plain, save_torch


@pytest.mark.parametrize("legacy", [False, True])
def test_the_payload_is_live(tmp_path, legacy, write_payload):
    """The unsafe load runs it, so the tests below would notice if ours did."""
    path = write_payload(tmp_path / "evil.pt", tmp_path / "ran", legacy=legacy)
    if legacy:
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_a_checkpoint_with_a_payload_is_refused_and_not_run(tmp_path, legacy, write_payload):
    marker = tmp_path / "ran"

    def as_checkpoint(payload):  # looks like ours, with the payload in the metadata
        good = save_checkpoint(create_model("sa2net-tiny"), tmp_path / "good.pt")
        checkpoint = torch.load(good, weights_only=True)
        checkpoint["metadata"]["note"] = payload
        return checkpoint

    path = write_payload(tmp_path / "evil.pt", marker, legacy=legacy, wrap=as_checkpoint)
    with pytest.raises(ValueError) as info:
        load_model(path)
    message = str(info.value)
    assert not marker.exists()
    assert "\n" not in message and str(path) in message
    assert "nothing in it ran" in message and "sa2net train" in message
    assert "weights_only=False" not in message  # torch's advice is the unsafe load


def test_plain_data_round_trips(tmp_path):
    state = {
        "rng": np.random.default_rng(3).bit_generator.state,
        "mt": np.random.MT19937(1).state,  # holds a numpy key array
        "metric": np.float64(0.5),
        "count": np.int64(3),
        "betas": (0.9, 0.999),
        "weights": torch.arange(4.0),
    }
    path = tmp_path / "state.pt"
    save_torch(plain(state), path)
    loaded = load_plain(path, what="a test file", fix="write it again")
    assert type(loaded["metric"]) is float and type(loaded["count"]) is int
    assert loaded["betas"] == (0.9, 0.999) and torch.equal(loaded["weights"], state["weights"])
    assert loaded["rng"] == state["rng"]
    restored = np.random.MT19937()
    restored.state = loaded["mt"]
    assert restored.random_raw() == np.random.MT19937(1).random_raw()
    with pytest.raises(TypeError, match="plain data"):
        plain({"x": object()})


def test_a_file_that_is_no_pt_names_the_fix(tmp_path):
    path = tmp_path / "text.pt"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"text\.pt is not a test file .*; write it again$"):
        load_plain(path, what="a test file", fix="write it again")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_an_oserror_not_a_torch_runtime_error():
    with pytest.raises(OSError) as info:
        save_torch({"w": torch.zeros(100_000)}, "/dev/full")
    assert info.value.errno == errno.ENOSPC


def hostile_package(path: Path, weights: bytes, rdf_extra: str = "") -> Path:
    """A bioimage.io zip shaped like ours whose weights file is ``weights``."""
    import hashlib
    import zipfile

    rdf = f"""type: model
config:
  napari_sa2net:
    config: {{name: sa2net-tiny, width: 8, in_channels: 1, num_classes: 3}}
    normalization: {{}}
weights:
  pytorch_state_dict:
    source: weights.pt
    sha256: {hashlib.sha256(weights).hexdigest()}
    architecture: {{callable: SA2NetProbabilities}}
{rdf_extra}"""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rdf.yaml", rdf)
        archive.writestr("weights.pt", weights)
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_a_package_with_payload_weights_is_refused_and_not_run(tmp_path, legacy, write_payload):
    marker = tmp_path / "ran"
    weights = write_payload(tmp_path / "w.pt", marker, legacy=legacy).read_bytes()
    package = hostile_package(tmp_path / "evil.zip", weights)
    with pytest.raises(ValueError) as info:
        load_model(package)
    assert not marker.exists()
    assert "\n" not in str(info.value) and str(package) in str(info.value)


def test_a_package_whose_yaml_asks_to_run_code_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    tag = f'x: !!python/object/apply:builtins.open ["{marker}", "w"]\n'
    package = hostile_package(tmp_path / "evil.zip", b"", rdf_extra=tag)
    with pytest.raises(Exception) as info:  # the type is the package reader's choice
        load_model(package)
    assert not marker.exists()
    message = user_message(info.value)  # what sa2net and the widgets show
    assert message is not None and "\n" not in message and "damaged" in message
