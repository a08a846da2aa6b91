"""map-vision: a low-definition map (stop signs, traffic lights) built and refreshed from fleet
observations, and the per-frame comparison of each car's detections with it (disagreements are a
trigger source). See docs/map-vision.md."""
