"""The rule of docs/explanations.md on hand-made tables: the most faithful method that passes the sanity check."""

from __future__ import annotations

import pandas as pd
import pytest

from mtlswin.explain.attribution import METHODS
from mtlswin.explain.defaults import DEFAULT_METHODS, default_method, default_stage, family_of
from mtlswin.explain.selection import choose


def tables(rows: list[tuple[str, str, bool, float]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    summary = pd.DataFrame([{"family": f, "method": m, "spearman_full": 0.1, "ssim_full": 0.1, "passes": p}
                            for f, m, p, _ in rows])  # fmt: skip
    faith = pd.DataFrame([{"family": f, "method": m, "road": r} for f, m, _, r in rows])
    return summary, faith


def test_the_most_faithful_eligible_method_is_chosen_not_the_most_faithful() -> None:
    summary, faith = tables([("swin", "gradcam", False, 0.30), ("swin", "hirescam", True, 0.10),
                             ("swin", "integrated_gradients", True, 0.20)])  # fmt: skip
    chosen = choose(summary, faith).set_index("family")
    assert chosen.loc["swin", "method"] == "integrated_gradients" and chosen.loc["swin", "eligible"]


def test_a_method_that_fails_a_required_known_answer_is_not_eligible() -> None:
    # gradcam passes the sanity check here but fails the box, gate and cue known answers; hirescam fails the gate,
    # which only seg_gated requires
    summary, faith = tables([("swin", "gradcam", True, 0.30), ("swin", "hirescam", True, 0.10),
                             ("seg_gated", "gradcam", True, 0.30), ("seg_gated", "hirescam", True, 0.20),
                             ("seg_gated", "integrated_gradients", False, 0.10)])  # fmt: skip
    chosen = choose(summary, faith).set_index("family")
    assert chosen.loc["swin", "method"] == "hirescam" and chosen.loc["swin", "eligible"]
    assert chosen.loc["seg_gated", "method"] == "gradcam" and not chosen.loc["seg_gated", "eligible"]
    assert "not evidence" in chosen.loc["seg_gated", "reason"]


def test_a_tie_within_a_thousandth_goes_to_the_earlier_candidate() -> None:
    summary, faith = tables([("mtl", "layercam", True, 0.2005), ("mtl", "hirescam", True, 0.2)])
    assert choose(summary, faith).loc[0, "method"] == "hirescam"
    summary, faith = tables([("mtl", "layercam", True, 0.2015), ("mtl", "hirescam", True, 0.2)])
    assert choose(summary, faith).loc[0, "method"] == "layercam"


def test_with_no_method_passing_the_family_is_marked_failing() -> None:
    summary, faith = tables([("joint", "gradcam", False, 0.1), ("joint", "eigencam", False, 0.3)])
    chosen = choose(summary, faith)
    assert chosen.loc[0, "method"] == "eigencam" and not chosen.loc[0, "eligible"]
    assert "not evidence" in chosen.loc[0, "reason"]


def test_defaults_name_candidate_methods_and_every_swin_family() -> None:
    assert set(DEFAULT_METHODS.values()) <= set(METHODS)
    assert {family_of(name) for name in ("swin", "swin_tiny", "mtl_swin_unet", "joint_swin", "seg_gated_swin")} == {
        "swin", "mtl", "joint", "seg_gated"}  # fmt: skip
    assert default_method("mtl_swin_unet") == DEFAULT_METHODS["mtl"]
    assert default_method("unet") == "gradcam"  # no family: the plain default


def test_default_stage_is_the_finest_swin_stage_and_none_for_cnns() -> None:
    from mtlswin.models import create_model, test_overrides

    assert default_stage(create_model("swin", **test_overrides("swin"))) == 0
    assert default_stage(create_model("resnet152", **test_overrides("resnet152"))) is None


def test_explain_select_writes_the_rule_tables_for_a_run(tiny_data, tmp_path) -> None:
    """The rule end to end on a tiny random Swin (two methods, two slices each): every table, one chosen row, and the
    chosen method is one the tables call eligible."""
    import torch
    import yaml

    from mtlswin.cli import main
    from mtlswin.models import create_model, save_model, test_overrides

    torch.manual_seed(0)
    folder = tmp_path / "run"
    folder.mkdir()
    save_model(create_model("swin", **test_overrides("swin")), folder / "model.safetensors")
    data = {"manifest": str(tiny_data.manifest), "splits": str(tiny_data.splits), "target": "hypodensity"}
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "swin"},
                                                        "data": {**data, "img_size": 32, "window": [40, 80]}}))  # fmt: skip
    from mtlswin.explain.selection import select_methods

    out = tmp_path / "select"
    chosen = select_methods({"swin": folder}, out, methods=("hirescam", "input_x_gradient"), n_sanity=2, n_road=2,
                            log=lambda _line: None)  # fmt: skip
    for name in ("sanity", "sanity_summary", "faithfulness", "chosen"):
        assert (out / f"{name}.csv").is_file()
    summary = pd.read_csv(out / "sanity_summary.csv")
    assert list(summary["method"]) == ["hirescam", "input_x_gradient"]
    steps = pd.read_csv(out / "sanity.csv")
    assert set(steps["variant"]) == {"cascading", "independent"} and steps["block"].iloc[0] == "head"
    assert len(chosen) == 1 and chosen.loc[0, "method"] in {"hirescam", "input_x_gradient"}
    if chosen.loc[0, "eligible"]:
        assert bool(summary.set_index("method").loc[chosen.loc[0, "method"], "passes"])
    assert "## Chosen" in (out / "selection.md").read_text()
    with pytest.raises(SystemExit):
        main(["explain-select", "--run", "swin", "--out", str(out)])  # not FAMILY=RUN: an argparse error
