"""``mtlswin compare``: claims and settings of reproduce folders side by side, on hand-written folders of the
real file formats."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from mtlswin.cli import main
from mtlswin.pipeline.compare import NOT_SET, NOT_TRAINED, compare_claims, setting_differences, write_comparison

CLAIMS = [  # claim, statistic, row, reference, role
    ("Swin loses AUC under the shift", "drop", "swin", "", "control"),
    ("RRR beats Swin on the trap", "auc_trap", "swin_rrr", "swin", "primary"),
    ("RRR beats Swin on test A", "auc_a", "swin_rrr", "swin", "secondary"),
]


def _folder(root, weight: float, estimates, verdicts, adjusted, not_learned=(0, 0, 0), claims=CLAIMS, trained_in=None):
    """``trained_in``: the folder the runs were trained in and copied from (their configs hold its absolute paths)."""
    root.mkdir()
    home = (trained_in or root).resolve()
    lines = []
    for (claim, stat, row, ref, role), est, verdict, adj, nl in zip(claims, estimates, verdicts, adjusted, not_learned):
        lines.append({"claim": claim, "statistic": stat, "row": row, "reference": ref, "estimate": est,
                      "low": est - 0.05, "high": est + 0.05, "verdict": verdict, "role": role,
                      "verdict_adjusted": adj, "n_not_learned": nl})  # fmt: skip
    pd.DataFrame(lines).to_csv(root / "claims.csv", index=False)
    for row, seeds in (("swin", (0, 1)), ("swin_rrr", (1, 0))):
        for seed in seeds:
            run = root / "runs" / f"{row}-seed{seed}"
            run.mkdir(parents=True)
            config = {"model": {"name": row}, "train": {"seed": seed, "epochs": 24},
                      "data": {"manifest": str(home / "data" / f"seed-{seed}" / "manifest.csv")},
                      "output": {"dir": str(home / "runs"), "name": run.name}}  # fmt: skip
            if row == "swin_rrr":
                config["train"]["guidance"] = {"kind": "rrr", "weight": weight}
            (run / "config.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture
def folders(tmp_path):
    a_priori = _folder(tmp_path / "a", 10.0, [0.3, -0.2, -0.3], ["held", "did not hold", "did not hold"],
                       ["held", "did not hold", "secondary (not adjusted)"], not_learned=(0, 3, 3))  # fmt: skip
    tuned = _folder(tmp_path / "b", 0.001, [0.3, 0.08, 0.01], ["held", "held", "inconclusive"],
                    ["held", "inconclusive", "secondary (not adjusted)"], trained_in=tmp_path / "a")  # fmt: skip
    return {"a-priori": a_priori, "val_auc": tuned}


def test_verdicts_side_by_side_with_the_adjusted_one_for_primary_claims(folders):
    table = compare_claims(folders).set_index("statistic")
    # the primary claim: held on its own (unadjusted) but inconclusive after Holm, so the comparison shows
    # the adjusted verdict, and a change from "did not hold"
    assert table.loc["auc_trap", "a-priori_verdict"] == "did not hold"
    assert table.loc["auc_trap", "val_auc_verdict"] == "inconclusive"
    assert table.loc["auc_trap", "val_auc_estimate"] == pytest.approx(0.08)
    assert table.loc["auc_trap", "a-priori_not_learned"] == 3
    # a secondary claim keeps its own verdict, not the "secondary (not adjusted)" placeholder
    assert table.loc["auc_a", "val_auc_verdict"] == "inconclusive"
    assert table["changed"].to_dict() == {"drop": False, "auc_trap": True, "auc_a": True}
    assert table.loc["drop", "role"] == "control"


def test_a_claim_missing_from_one_folder_counts_as_changed(tmp_path, folders):
    only_two = _folder(tmp_path / "c", 10.0, [0.3, -0.2], ["held", "did not hold"], ["held", "did not hold"],
                       claims=CLAIMS[:2])  # fmt: skip
    table = compare_claims({"a-priori": folders["a-priori"], "two": only_two}).set_index("statistic")
    assert table.loc["auc_a", "changed"]
    assert pd.isna(table.loc["auc_a", "two_verdict"])
    assert not table.loc["auc_trap", "changed"]


def test_settings_differ_only_where_the_runs_differ_not_in_paths_inside_the_folders(folders):
    diff = setting_differences(folders)
    # data.manifest and output.dir: the runs of "val_auc" were copied from "a-priori" and keep its absolute paths;
    # relative to the run folder, as the config digest takes them, they are the same
    assert diff.to_dict("records") == [
        {"row": "swin_rrr", "key": "train.guidance.weight", "a-priori": 10.0, "val_auc": 0.001}
    ]


def test_a_setting_left_at_its_default_and_a_row_not_trained_are_named_not_nan(tmp_path, folders):
    # MTL's case in the fair race: null (the default weights) in one folder, written-out weights in the other
    for label, weights in (("a-priori", None), ("val_auc", {"cls": 0.1, "seg": 0.9})):
        for seed in (0, 1):
            path = folders[label] / "runs" / f"swin-seed{seed}" / "config.yaml"
            config = yaml.safe_load(path.read_text())
            config["train"]["loss_weights"] = weights
            path.write_text(yaml.safe_dump(config))
    third = tmp_path / "c"  # trained Swin only
    (third / "runs").mkdir(parents=True)
    shutil.copytree(folders["a-priori"] / "runs" / "swin-seed0", third / "runs" / "swin-seed0")
    shutil.copy(folders["a-priori"] / "claims.csv", third / "claims.csv")
    diff = setting_differences({**folders, "third": third}).set_index("key")
    assert diff.loc["train.loss_weights.cls", ["a-priori", "val_auc", "third"]].tolist() == [NOT_SET, 0.1, NOT_SET]
    assert "train.loss_weights" not in diff.index  # null and absent are the same setting
    assert diff.loc["train.guidance.weight", "third"] == NOT_TRAINED
    text = write_comparison({**folders, "third": third}, tmp_path / "out").read_text()
    assert f"| swin | `train.loss_weights.seg` | {NOT_SET} | `0.9` | {NOT_SET} |" in text
    assert f"| swin_rrr | `train.guidance.weight` | `10.0` | `0.001` | {NOT_TRAINED} |" in text
    assert "nan" not in text


def test_write_comparison_and_its_markdown(tmp_path, folders):
    path = write_comparison(folders, tmp_path / "out")
    text = path.read_text()
    assert "| swin_rrr | `train.guidance.weight` | `10.0` | `0.001` |" in text
    assert "-.200 [-.250, -.150] did not hold, 3 run(s) did not learn" in text
    assert "2 of 3 claims changed verdict." in text
    # control first, then primary, then secondary
    assert text.index("Swin loses AUC") < text.index("RRR beats Swin on the trap") < text.index("on test A")
    assert len(pd.read_csv(tmp_path / "out" / "compare.csv")) == 3
    assert len(pd.read_csv(tmp_path / "out" / "compare_settings.csv")) == 1


def test_cli_errors_name_the_folder_or_the_argument(tmp_path, folders, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    assert main(["compare", f"a={folders['a-priori']}", f"b={empty}", "--out", str(out)]) == 1
    assert f"{empty / 'claims.csv'} does not exist" in capsys.readouterr().err
    assert not (out / "compare.md").exists()
    assert main(["compare", f"a={folders['a-priori']}", f"a={folders['val_auc']}", "--out", str(out)]) == 1
    assert "each folder needs its own label" in capsys.readouterr().err
    assert main(["compare", f"a={folders['a-priori']}", "--out", str(out)]) == 1
    assert "at least two folders" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(folders["a-priori"]), "--out", str(out)])
    assert exit_.value.code == 2
    assert main(["compare", f"a={folders['a-priori']}", f"b={folders['val_auc']}", "--out", str(out)]) == 0
    assert "Comparison:" in capsys.readouterr().out
