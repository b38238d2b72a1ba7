"""Input standardisation is part of the model: applied in forward, saved with the config, no state."""

from __future__ import annotations

import pytest
import torch

from mtlswin.models import create_model, list_models, load_model, save_model, test_overrides

MEAN, STD = 0.2, 0.5


def _pair(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights with identity and with (MEAN, STD) standardisation, both in eval mode."""
    torch.manual_seed(0)
    plain = create_model(name, **test_overrides(name)).eval()
    normed = create_model(name, **test_overrides(name), input_mean=MEAN, input_std=STD).eval()
    normed.load_state_dict(plain.state_dict())
    return plain, normed


# seg_gated_swin gates the RAW image with its frozen Swin-Unet (which keeps its own standardisation); only its
# classifier sees the standardised gated image, so standardising the input first is not the same thing.
@pytest.mark.parametrize("name", [m for m in list_models() if m != "seg_gated_swin"])
def test_standardised_model_equals_plain_model_on_standardised_input(name):
    plain, normed = _pair(name)
    size = getattr(plain.config, "img_size", 32)
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got, want = normed(x), plain((x - MEAN) / STD)
        unchanged = plain(x)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5)
    key = next(iter(want))
    assert not torch.allclose(got[key], unchanged[key]), "standardisation had no effect"
    assert set(normed.state_dict()) == set(plain.state_dict())  # no new keys: converters are unaffected


@pytest.mark.parametrize("name", ["swin", "mtl_swin_unet", "resnet152"])
def test_standardisation_survives_save_and_load(tmp_path, name):
    _, normed = _pair(name)
    save_model(normed, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors").eval()
    assert (loaded.config.input_mean, loaded.config.input_std) == (MEAN, STD)
    size = getattr(normed.config, "img_size", 32)
    x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = normed(x), loaded(x)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_std_is_refused_naming_the_model(bad):
    with pytest.raises(ValueError, match="input_std"):
        create_model("swin", **test_overrides("swin"), input_std=bad)
