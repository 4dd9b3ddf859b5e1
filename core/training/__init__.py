"""Training: the teacher's training loop (train) and progressive distillation (distill)."""
