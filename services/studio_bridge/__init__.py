"""Label Studio as the labelling front end of the label store (docs/label-studio.md)."""
