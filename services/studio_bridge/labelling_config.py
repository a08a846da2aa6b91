"""A task's label schema as a Label Studio labelling config (XML), and a fingerprint of it.

- detection: one RectangleLabels with the task's classes; every attribute a per-region choice
  (free-text attributes a per-region text area), all required, so a submitted box is complete;
- classification: the class and every attribute as choices for the whole image;
- landmark: KeyPointLabels with the task's keypoint names.

The config names only what the schema holds: `results.py` reads annotations back by these names
(`box`, `cls`, `kp`, and the attribute names).
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import quoteattr

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L

IMAGE = "image"  # the <Image> tag's name and the task data key holding the image URL
BOX, CLASS, KEYPOINT = "box", "cls", "kp"
RESERVED = {IMAGE, BOX, CLASS, KEYPOINT}


class UnsupportedTask(ValueError):
    """A task Label Studio cannot label through this bridge (e.g. segmentation)."""


def _choices(name: str, values, per_region: bool) -> str:
    region = ' perRegion="true"' if per_region else ""
    if not values:  # free text
        return f'  <TextArea name={quoteattr(name)} toName="{IMAGE}"{region} required="true" maxSubmissions="1" editable="true"/>'
    options = "".join(f"<Choice value={quoteattr(v)}/>" for v in values)
    return f'  <Header value={quoteattr(name)}/>\n  <Choices name={quoteattr(name)} toName="{IMAGE}"{region} choice="single" required="true" showInline="true">{options}</Choices>'


def labelling_config(task: L.Task) -> str:
    clash = {a.name for a in task.attributes} & RESERVED
    if clash:
        raise UnsupportedTask(f"task {task.name}: attribute names {sorted(clash)} are reserved by the bridge's config")
    lines = ["<View>", f'  <Image name="{IMAGE}" value="${IMAGE}" zoom="true"/>']
    labels = "".join(f"<Label value={quoteattr(c)}/>" for c in task.classes)
    if task.prototype == C.TASK_PROTOTYPE_DETECTION:
        lines.append(f'  <RectangleLabels name="{BOX}" toName="{IMAGE}">{labels}</RectangleLabels>')
        lines += [_choices(a.name, a.values, per_region=True) for a in task.attributes]
    elif task.prototype == C.TASK_PROTOTYPE_CLASSIFICATION:
        lines.append(_choices(CLASS, list(task.classes), per_region=False))
        lines += [_choices(a.name, a.values, per_region=False) for a in task.attributes]
    elif task.prototype == C.TASK_PROTOTYPE_LANDMARK:
        points = "".join(f"<Label value={quoteattr(k)}/>" for k in task.keypoint_names)
        lines.append(f'  <KeyPointLabels name="{KEYPOINT}" toName="{IMAGE}">{points}</KeyPointLabels>')
    else:
        raise UnsupportedTask(f"task {task.name}: prototype {C.TaskPrototype.Name(task.prototype)} has no Label Studio config in the bridge")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def fingerprint(config: str) -> str:
    """What the bridge records beside a project's config to notice edits made in Label Studio."""
    return hashlib.sha256(" ".join(config.split()).encode()).hexdigest()[:16]
