"""The paper's Table 1 (Hirata & Ohkita): its row labels, and its numbers as reported, for orientation.

No imports: the CLI (``reproduce --help``) and the report read this at start-up.
"""

# The 12 rows of the paper's Table 1 in its order: config/run name -> the paper's label.
TABLE1_LABELS = {
    "unet": "U-Net",
    "swin_unet": "Swin-Unet",
    "resnet152": "ResNet152",
    "swin": "Swin Transformer",
    "swin_tiny": "Swin Transformer-tiny",
    "joint_learning": "Joint-Learning",
    "joint_swin": "Joint-SwinTransformer",
    "joint_swin_tiny": "Joint-SwinTransformer-tiny",
    "mtl_cls_rec": "MTL-Swin-Unet (cls+rec)",
    "mtl_cls_seg": "MTL-Swin-Unet (cls+seg)",
    "mtl_cls_seg_rec": "MTL-Swin-Unet (cls+seg+rec)",
    "mtl_tiny_cls_seg_rec": "MTL-Swin-Unet-tiny (cls+seg+rec)",
}


PAPER_TABLE1_MD = """\
| Method | IoU | acc A | prec A | rec A | F1 A | AUC A | acc B | prec B | rec B | F1 B | AUC B |
|---|---|---|---|---|---|---|---|---|---|---|---|
| U-Net | .692 | | | | | | | | | | |
| Swin-Unet | .808 | | | | | | | | | | |
| ResNet152 | | .901 | .655 | .333 | .692 | .804 | .822 | .126 | .095 | .504 | .511 |
| Swin Transformer | | .956 | .813 | .819 | .895 | .963 | .746 | .254 | .600 | .599 | .772 |
| Swin Transformer-tiny | | .952 | .825 | .752 | .880 | .959 | .755 | .240 | .505 | .587 | .741 |
| Joint-Learning | | .945 | .792 | .724 | .863 | .913 | .787 | .208 | .305 | .560 | .631 |
| Joint-SwinTransformer | | .956 | .859 | .752 | .888 | .974 | .797 | .317 | .638 | .650 | .787 |
| Joint-SwinTransformer-tiny | | .953 | .857 | .724 | .879 | .950 | .782 | .287 | .581 | .626 | .788 |
| MTL-Swin-Unet (cls+rec) | | .949 | .805 | .743 | .871 | .955 | .736 | .238 | .571 | .586 | .755 |
| MTL-Swin-Unet (cls+seg) | .815 | .956 | .823 | .800 | .893 | .967 | .757 | .256 | .648 | .617 | .788 |
| MTL-Swin-Unet (cls+seg+rec) | .811 | .961 | .852 | .809 | .903 | .967 | .756 | .276 | .667 | .618 | .799 |
| MTL-Swin-Unet-tiny (cls+seg+rec) | .773 | .960 | .841 | .810 | .901 | .973 | .752 | .282 | .705 | .623 | .790 |
"""
# Test A = a held-out 10% of hospital 1 (trained on hospitals 1-4); test B = hospitals 5-11 (covariate shift).
# F1 is the macro F1 over both classes (see SPEC.md).


def _paper_auc() -> dict[str, tuple[float, float]]:
    """``row -> (AUC A, AUC B)`` read from :data:`PAPER_TABLE1_MD` (one source for the numbers)."""
    by_label = {label: row for row, label in TABLE1_LABELS.items()}
    out = {}
    for line in PAPER_TABLE1_MD.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[6] and cells[11]:
            out[by_label[cells[0]]] = (float(cells[6]), float(cells[11]))
    return out


# The paper's AUC on test A and test B per classifier row: what its claims' differences were.
PAPER_AUC = _paper_auc()
