"""VI-ReID baselines (AGW, CGRNet, DART), their shared trainer, augmentations and run orchestration."""
