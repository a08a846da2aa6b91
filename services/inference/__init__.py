"""inference: scores uploaded snapshots with the served multitask model on NVIDIA Triton."""
