"""The shared multitask perception network, one concern per module (import from the one you need):

- `network`: the network itself (`MultiTaskNet`: a small CNN backbone, one `Head` per declared
  `longtail.tasks.TaskSpec`, optional per-task branches);
- `postprocess`: raw head outputs -> per-image plain dicts (probabilities, boxes, ranges,
  bearings, keypoints); `predict_with` runs an eager or scripted network and post-processes;
- `fitting`: annotations -> target tensors (`encode_targets`), the multitask loss
  (`compute_loss`) and the training loop (`fit`);
- `torchscript`: weights as TorchScript archives with the model config embedded (`to_bytes`,
  `save`, `from_bytes`, `load`, `load_scripted`) and `state_dict_sha256`.

The task schema itself lives in `longtail.tasks` (torch-free).
"""
