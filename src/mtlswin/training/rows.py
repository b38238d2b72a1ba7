"""The rows of the paper's Table 1 (no heavy imports: the CLI reads this at start-up)."""

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
