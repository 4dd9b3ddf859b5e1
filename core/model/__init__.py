"""The model: the network (network), the noise schedule and sampler (diffusion), the paper's
losses (losses), a checkpoint's files (checkpoint) and the manifest with their sha256 (manifest)."""
