"""The trainer: multitask training, the no-regression gate, the model registry and trigger detectors."""
