"""PAPG: the pose-attention-guided visible<->infrared generator, its trainer, paired-image synthesis and scores."""
