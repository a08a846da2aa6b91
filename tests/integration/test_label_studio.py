"""Label Studio as the label store's labelling front end, against a real Label Studio server
(`longtail infra up --label-studio`), the real label store, Kafka and S3, and the bridge as a
process (docs/label-studio.md): the project made from the task's schema, the queue pushed with the
pre-labels as predictions, an annotation made through Label Studio's API becoming a label, a Kafka
event and a dataset entry; a malformed annotation refused and reported; a retried webhook creating
nothing twice; a label made elsewhere closing the task; a config edited in Label Studio stopping
the pushes until it is regenerated."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
import waiting
from kafka_probe import read_since

from longtail import topics
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.common.v1 import common_pb2 as C
from longtail.config import S3Settings
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.inference.v1 import events_pb2 as inference_events
from longtail.kafka import Producer, start_group_at_end
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc
from longtail.registry import LABEL_STORE
from longtail.storage import ObjectStore

from longtail_dev.supervisor import HttpServiceProcess, ServiceProcess

# Label Studio (Django on SQLite) answers more slowly than our services on a busy machine.
wait_for = functools.partial(waiting.wait_for, timeout=90.0, interval=0.5)

pytestmark = pytest.mark.integration

SECRET = "studio-test-operator-secret-0123456789abcdef"
WEBHOOK_SECRET = "studio-test-webhook-secret-0123456789"
SAMPLES = 6
ATTRIBUTES = {"occlusion": "foliage", "mount": "pole", "modifier": "none", "temporary": "false"}


def token(name: str, role: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {issue_token(name, SECRET, audience=OPERATOR_AUDIENCE, roles=(role,))}")]


class Studio:
    """Label Studio's REST API as the test uses it (the admin's token)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def call(self, method: str, path: str, body=None):
        request = urllib.request.Request(f"{self.url}{path}", method=method, data=None if body is None else json.dumps(body).encode(), headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            text = r.read()
            return json.loads(text) if text else None

    def project(self, title: str) -> dict | None:
        found = self.call("GET", "/api/projects/?page_size=1000")
        return next((p for p in found["results"] if p["title"] == title), None)

    def tasks(self, project: int) -> list[dict]:
        found = self.call("GET", f"/api/tasks/?project={project}&page_size=1000&fields=all")
        return found["tasks"] if isinstance(found, dict) else found


def png(i: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (320, 240), (40 * i % 255, 120, 200))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def stack(kafka, s3, label_studio, tmp_path_factory):
    run = uuid.uuid4().hex[:6]
    state = tmp_path_factory.mktemp("studio")
    objects = ObjectStore(S3Settings(endpoint=s3["S3_ENDPOINT"], access_key=s3["S3_ACCESS_KEY"], secret_key=s3["S3_SECRET_KEY"], bucket=s3["S3_BUCKET"]))
    objects.ensure_bucket()
    # this run's label store starts at the end of the topics: the shared broker holds other tests' snapshots
    start_group_at_end(kafka, f"studio-{run}", [topics.SNAPSHOTS, topics.INFERENCE_RESULTS])
    store = ServiceProcess(
        LABEL_STORE.package,
        LABEL_STORE.grpc,
        {"OPERATOR_TOKEN_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{state / 'labels.db'}", "LABEL_STORE_CONSUMER_GROUP": f"studio-{run}", "LABEL_STORE_DATA_DIR": str(state)},
    ).start(timeout=120)
    bridge = None
    try:
        sample_ids = [register(objects, kafka, run, i, pre_label=i < 3) for i in range(SAMPLES)]
        api = labels_pb2_grpc.LabelStoreServiceStub(store.channel())
        wait_for(lambda: len(api.ListQueue(L.ListQueueRequest(task="stop_sign"), timeout=10).items) == SAMPLES, timeout=180, what="the samples in the queue")
        wait_for(lambda: sum(1 for i in api.ListQueue(L.ListQueueRequest(task="stop_sign"), timeout=10).items if i.sample.pre_labels) == 3, timeout=120, what="the pre-labels")
        env = {
            "LABEL_STORE_ADDR": store.address,
            "STUDIO_BRIDGE_LABEL_STORE_TOKEN": issue_token("label-studio", SECRET, audience=OPERATOR_AUDIENCE, roles=("bridge",)),
            "STUDIO_BRIDGE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STUDIO_BRIDGE_TASKS": '["stop_sign"]',
            "STUDIO_BRIDGE_PROJECT_PREFIX": f"it-{run}",
            "STUDIO_BRIDGE_POLL_SECONDS": "1",
            **{k: v for k, v in store.env.items() if k.startswith("GRPC_TLS_")},  # the bridge reaches the label store over TLS
        }
        bridge = HttpServiceProcess("studio_bridge", "STUDIO_BRIDGE_HTTP_PORT", env).start(timeout=120)
        studio = Studio(label_studio["LABEL_STUDIO_URL"], label_studio["LABEL_STUDIO_TOKEN"])
        project = wait_for(lambda: studio.project(f"it-{run} stop_sign"), what="the project")
        wait_for(lambda: len(studio.tasks(project["id"])) == SAMPLES, what="the pushed tasks")
        yield {"user": label_studio["LABEL_STUDIO_USERNAME"], "run": run, "api": api, "studio": studio, "project": project, "bridge": bridge, "store": store, "objects": objects, "samples": sample_ids, "kafka": kafka, "env": env}
    finally:
        if bridge is not None:
            bridge.stop()
        store.stop()


def register(objects: ObjectStore, kafka: str, run: str, i: int, pre_label: bool) -> str:
    """A snapshot as the gateway leaves it (the image in S3, the event in Kafka), and optionally the
    inference service's pre-label for it."""
    data = png(i + int(run, 16) % 50)
    sample_id = hashlib.sha256(data + run.encode()).hexdigest()
    key = f"snapshots/studio-{run}/{i}.png"
    objects.put_at(key, data, "image/png")
    event = fleet_events.SnapshotUploaded(
        snapshot_id=sample_id, vehicle_id=f"studio-{run}", frame_id=f"{run}:{i}", trigger_id="occluded-stop", trigger_version=1, fire_id=f"f{i}", object_key=key, bucket=objects.bucket, size_bytes=len(data), content_type="image/png"
    )
    event.captured_at.GetCurrentTime()
    producer = Producer(kafka, "studio-test")
    producer.produce(topics.SNAPSHOTS, sample_id, event)
    if pre_label:
        result = inference_events.InferenceResult(snapshot_id=sample_id, model=C.ModelRef(name="multitask", version=3))
        prediction = result.predictions["stop_sign"]
        prediction.task, prediction.prototype = "stop_sign", C.TASK_PROTOTYPE_DETECTION
        d = prediction.output.detection.detections.add(cls="stop_sign", confidence=0.45, box=C.BoundingBox(x_min=0.2, y_min=0.2, x_max=0.4, y_max=0.5))
        d.attributes.update(ATTRIBUTES)
        producer.produce(topics.INFERENCE_RESULTS, sample_id, result)
    producer.close()
    return sample_id


def box_result(region="a", x=20.0, attributes=ATTRIBUTES) -> list[dict]:
    geometry = {"x": x, "y": 20.0, "width": 20.0, "height": 30.0, "rotation": 0}
    out = [{"id": region, "from_name": "box", "to_name": "image", "type": "rectanglelabels", "value": {**geometry, "rectanglelabels": ["stop_sign"]}, "original_width": 320, "original_height": 240}]
    out += [{"id": region, "from_name": k, "to_name": "image", "type": "choices", "value": {**geometry, "choices": [v]}} for k, v in attributes.items()]
    return out


def task_of(stack, sample_id: str) -> dict:
    return next(t for t in stack["studio"].tasks(stack["project"]["id"]) if t["data"]["sample_id"] == sample_id)


def labels_of(stack, sample_id: str) -> list[L.Label]:
    return [lb for lb in stack["api"].GetSample(L.GetSampleRequest(sample_id=sample_id), timeout=10).labels if lb.task == "stop_sign"]


def test_the_project_is_the_task_schema_and_the_queue_arrives_with_predictions(stack):
    config = stack["project"]["label_config"]
    assert '<Label value="stop_sign"/>' in config and 'name="occlusion"' in config and 'perRegion="true"' in config
    tasks = stack["studio"].tasks(stack["project"]["id"])
    assert {t["data"]["sample_id"] for t in tasks} == set(stack["samples"])
    predicted = [t for t in tasks if t.get("predictions")]
    assert len(predicted) == 3
    prediction = predicted[0]["predictions"][0]
    assert prediction["model_version"] == "multitask:3" and prediction["score"] == pytest.approx(0.45, abs=1e-3)
    rect = next(r for r in prediction["result"] if r["type"] == "rectanglelabels")
    assert rect["value"]["x"] == pytest.approx(20) and rect["value"]["rectanglelabels"] == ["stop_sign"]
    # the image comes from the object store through the bridge, signed; a forged URL is refused
    url = tasks[0]["data"]["image"]
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"] == "image/png" and r.read()[:4] == b"\x89PNG"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url.replace("sig=", "sig=0"), timeout=10)
    assert refused.value.code == 403


def test_an_annotation_becomes_a_label_an_event_and_a_dataset_entry(stack):
    since_ms = int(time.time() * 1000) - 1000
    sample_id = stack["samples"][0]
    task = task_of(stack, sample_id)
    stack["studio"].call("POST", f"/api/tasks/{task['id']}/annotations/", {"result": box_result(), "was_cancelled": False})
    [label] = wait_for(lambda: labels_of(stack, sample_id), what="the label")
    assert label.labeller_id == "label-studio:" + stack["user"] and label.labeller_kind == L.LABELLER_KIND_HUMAN
    (d,) = label.annotation.detection.detections
    assert dict(d.attributes) == ATTRIBUTES and d.box.x_min == pytest.approx(0.2) and d.box.y_max == pytest.approx(0.5)
    events = read_since(stack["kafka"], topics.LABELS_CREATED, since_ms, keep=lambda k, v: v.label.sample_id == sample_id, want=1)
    assert events and events[0][1].label.labeller_id == label.labeller_id
    dataset = stack["api"].CreateDataset(L.CreateDatasetRequest(name=f"studio-{stack['run']}", tasks=["stop_sign"], filter=L.SampleFilter(sample_ids=[sample_id])), metadata=token("olga", "operator"), timeout=30).dataset
    assert dataset.label_count == 1
    manifest = stack["objects"].get(dataset.manifest_key).decode()
    assert sample_id in manifest and label.label_id in manifest


def test_a_malformed_annotation_is_rejected_and_reported(stack):
    sample_id = stack["samples"][1]
    task = task_of(stack, sample_id)
    incomplete = box_result(attributes={"occlusion": "none"})  # three attributes missing: not a complete label
    stack["studio"].call("POST", f"/api/tasks/{task['id']}/annotations/", {"result": incomplete, "was_cancelled": False})

    def reported():
        with urllib.request.urlopen(f"{stack['bridge'].url}/rejections", timeout=10) as r:
            return [x for x in json.loads(r.read()) if f"task {task['id']}" in x["reason"] or "attributes.mount" in x["reason"]]

    [rejection] = wait_for(reported, what="the rejection")
    assert rejection["status"] == 422 and "mount: missing" in rejection["reason"]
    assert labels_of(stack, sample_id) == []  # nothing recorded, and the sample is still waiting
    queue = stack["api"].ListQueue(L.ListQueueRequest(task="stop_sign"), timeout=10).items
    assert sample_id in {i.sample.sample_id for i in queue}


def test_a_retried_webhook_creates_nothing_twice(stack):
    sample_id = stack["samples"][2]
    task = task_of(stack, sample_id)
    annotation = stack["studio"].call("POST", f"/api/tasks/{task['id']}/annotations/", {"result": box_result(x=30.0), "was_cancelled": False})
    wait_for(lambda: labels_of(stack, sample_id), what="the label")
    payload = {"action": "ANNOTATION_CREATED", "annotation": annotation, "task": task, "project": {"id": stack["project"]["id"]}}
    answers = []
    for _ in range(2):  # Label Studio retrying a webhook whose answer it did not get
        request = urllib.request.Request(f"{stack['bridge'].url}/webhook", data=json.dumps(payload).encode(), headers={"Authorization": f"Bearer {WEBHOOK_SECRET}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            answers.append(json.loads(r.read()))
    assert all(a["duplicate"] for a in answers)
    assert len(labels_of(stack, sample_id)) == 1


def test_webhooks_without_the_secret_or_for_another_project_are_refused(stack):
    def post(body, secret):
        request = urllib.request.Request(f"{stack['bridge'].url}/webhook", data=body, headers={"Authorization": f"Bearer {secret}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        return refused.value.code, json.loads(refused.value.read())["error"]

    assert post(b"{}", "guess")[0] == 401
    code, why = post(json.dumps({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "result": []}, "task": {"id": 1, "data": {}}, "project": {"id": 987654}}).encode(), WEBHOOK_SECRET)
    assert code == 404 and "project 987654 is not a project of this bridge" in why
    assert post(b"not json", WEBHOOK_SECRET)[0] == 400
    assert metric(stack, 'longtail_studio_webhooks_total{outcome="unknown"}') >= 1
    assert metric(stack, 'longtail_studio_webhooks_total{outcome="unauthorized"}') >= 1


def metric(stack, series: str) -> float:
    with urllib.request.urlopen(f"{stack['bridge'].url}/metrics", timeout=10) as r:
        lines = [line for line in r.read().decode().splitlines() if line.startswith(series + " ")]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def test_a_label_made_elsewhere_closes_the_task(stack):
    sample_id = stack["samples"][3]
    task = task_of(stack, sample_id)
    lena = token("lena", "labeller")
    lease = stack["api"].GetNextTask(L.GetNextTaskRequest(task="stop_sign", sample_id=sample_id), metadata=lena, timeout=10).lease
    assert lease.sample.sample_id == sample_id
    out = C.TaskOutput(detection=C.DetectionOutput())
    d = out.detection.detections.add(cls="stop_sign", confidence=1.0, box=C.BoundingBox(x_min=0.1, y_min=0.1, x_max=0.2, y_max=0.2))
    d.attributes.update(ATTRIBUTES)
    stack["api"].SubmitLabel(L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key="cli-1", label=L.Label(annotation=out)), metadata=lena, timeout=10)

    def gone():
        try:
            stack["studio"].call("GET", f"/api/tasks/{task['id']}/")
        except urllib.error.HTTPError as exc:
            return exc.code == 404
        return False

    wait_for(gone, timeout=60, what="the Label Studio task to be closed")


def test_a_config_edited_in_label_studio_stops_pushes_until_regenerated(stack):
    studio, project = stack["studio"], stack["project"]
    edited = project["label_config"].replace('<Choice value="foliage"/>', '<Choice value="foliage"/><Choice value="snow"/>')
    studio.call("PATCH", f"/api/projects/{project['id']}/", {"label_config": edited})
    new = register(stack["objects"], stack["kafka"], stack["run"], SAMPLES, pre_label=False)
    wait_for(lambda: any(i.sample.sample_id == new for i in stack["api"].ListQueue(L.ListQueueRequest(task="stop_sign"), timeout=10).items), what="the new sample in the queue")

    def drift() -> float:
        return metric(stack, 'longtail_studio_config_drift{task="stop_sign"}')

    wait_for(lambda: drift() == 1.0, what="the drift to be noticed")
    time.sleep(3)  # three syncs: the new sample must not be pushed meanwhile
    assert new not in {t["data"]["sample_id"] for t in studio.tasks(project["id"])}
    regenerate = subprocess.run([sys.executable, "-m", "longtail_cli.app", "studio", "regenerate", "stop_sign"], env=stack["bridge"].env, capture_output=True, text=True, timeout=120)
    assert regenerate.returncode == 0, regenerate.stdout + regenerate.stderr
    assert "regenerated" in regenerate.stdout
    wait_for(lambda: new in {t["data"]["sample_id"] for t in studio.tasks(project["id"])}, what="pushes to resume")
    assert drift() == 0.0


def test_label_studio_down_the_bridge_waits_and_the_queue_keeps_its_items(stack):
    """Label Studio stopped: the bridge retries with backoff and stays up, the label store keeps
    the new sample in its queue; Label Studio back: the sample is pushed."""
    from longtail_dev.infra import Launcher

    launcher = Launcher()
    launcher.down(["label-studio"])
    try:
        new = register(stack["objects"], stack["kafka"], stack["run"], SAMPLES + 1, pre_label=False)
        wait_for(lambda: any(i.sample.sample_id == new for i in stack["api"].ListQueue(L.ListQueueRequest(task="stop_sign"), timeout=10).items), what="the new sample in the queue")
        time.sleep(3)  # several syncs against a stopped Label Studio
        with urllib.request.urlopen(f"{stack['bridge'].url}/healthz", timeout=10) as r:
            assert r.status == 200
        assert "sync failed, retrying" in stack["bridge"].log_path.read_text() or "label studio unavailable" in stack["bridge"].log_path.read_text()
    finally:
        launcher.up(["label-studio"])
    studio, project = stack["studio"], stack["project"]
    wait_for(lambda: new in {t["data"]["sample_id"] for t in studio.tasks(project["id"])}, timeout=120, what="the push after Label Studio's return")


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "out", "tests", "label-studio")


def test_a_labeller_labels_in_a_real_browser(stack, label_studio, tmp_path):
    """Headless Debian Chromium driven by Playwright: a labeller logs in, opens a task of the
    stop_sign project, draws the box, picks its attributes, submits; the label store has the label,
    as that labeller."""
    from playwright.sync_api import sync_playwright

    from longtail_dev.infra.label_studio import LabelStudio

    assert os.path.exists(CHROMIUM), "Debian's chromium is installed by scripts/bootstrap"
    email, password = f"lena-{stack['run']}@longtail.local", "lena-password-1"
    LabelStudio().create_user(email, password)
    sample_id = stack["samples"][4]
    task = task_of(stack, sample_id)
    url = label_studio["LABEL_STUDIO_URL"]
    left_the_machine: list[str] = []
    os.makedirs(SCREENSHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})

        def loopback_only(route):
            if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
                return route.continue_()
            left_the_machine.append(route.request.url)
            return route.abort()

        context.route("**/*", loopback_only)
        page = context.new_page()
        try:
            page.goto(f"{url}/user/login/")
            page.fill("#email", email)
            page.fill("#password", password)
            page.click("button.login-button")
            page.wait_for_url(lambda u: "/user/login" not in u, timeout=60_000)
            page.goto(f"{url}/projects/{stack['project']['id']}/data?task={task['id']}")
            page.wait_for_selector(".lsf-label", timeout=90_000)
            stage = page.locator(".konvajs-content").first
            stage.wait_for()
            page.wait_for_timeout(500)
            page.locator(".lsf-label", has_text="stop_sign").first.click()
            area = stage.bounding_box()
            x0, y0 = area["x"] + area["width"] * 0.3, area["y"] + area["height"] * 0.3
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x0 + 120, y0 + 90, steps=10)
            page.mouse.up()
            page.wait_for_timeout(300)
            first = page.locator("label.lsf-choice__checkbox", has_text="foliage").first
            if not first.is_visible():  # per-region choices show while the region is selected
                page.mouse.click(x0 + 60, y0 + 45)
            for value in ("foliage", "pole", "except_right_turn", "false"):  # one per attribute; the texts are unique
                page.locator("label.lsf-choice__checkbox", has_text=value).first.click()
            page.screenshot(path=os.path.join(SCREENSHOTS, "before-submit.png"))
            page.locator("button", has_text="Submit").first.click()
            page.wait_for_timeout(1500)
            page.screenshot(path=os.path.join(SCREENSHOTS, "after-submit.png"))
        except Exception:
            page.screenshot(path=os.path.join(SCREENSHOTS, "failure.png"))
            raise
        finally:
            browser.close()
    [label] = wait_for(lambda: labels_of(stack, sample_id), what="the browser's label in the label store")
    assert label.labeller_id == f"label-studio:{email}"
    (d,) = label.annotation.detection.detections
    assert dict(d.attributes) == {"occlusion": "foliage", "mount": "pole", "modifier": "except_right_turn", "temporary": "false"}
    assert 0 < d.box.x_min < d.box.x_max <= 1 and 0 < d.box.y_min < d.box.y_max <= 1
    if left_the_machine:  # refused by the route above: nothing leaves the machine
        print(f"requests off this machine refused: {len(left_the_machine)}, e.g. {left_the_machine[:3]}")
