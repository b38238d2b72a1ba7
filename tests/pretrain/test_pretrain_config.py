"""``mtlswin pretrain`` takes exactly the models that declare ``simmim_pretrain``; refusals name them."""

from __future__ import annotations

import re

import pytest

from mtlswin.models import list_models
from mtlswin.models.registry import get_entry, models_with
from mtlswin.pretrain.config import pretrain_config_from_dict


@pytest.mark.parametrize("name", list_models())
def test_a_model_is_accepted_iff_it_declares_simmim_pretrain(name):
    raw = {"model": {"name": name}, "output": {"dir": "runs", "name": "p"}}
    if get_entry(name).capabilities.simmim_pretrain:
        assert pretrain_config_from_dict(raw).model.name == name
        return
    listed = ", ".join(models_with("simmim_pretrain"))
    assert listed.startswith("swin, swin_tiny, swin_unet, mtl_swin_unet, joint_swin")
    with pytest.raises(ValueError, match=re.escape(f"must be a Swin family ({listed}), got {name!r}")):
        pretrain_config_from_dict(raw)
