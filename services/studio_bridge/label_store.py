"""The label store as the bridge sees it: its own gRPC API, called with the bridge's token (role
`bridge`: it labels on behalf of Label Studio's users, recorded as `<bridge>:<user>`)."""

from __future__ import annotations

import grpc
from google.protobuf.duration_pb2 import Duration

from longtail.grpc_client import channel
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc


class LabelStoreClient:
    def __init__(self, address: str, token: str, credentials: grpc.ChannelCredentials | None, timeout_s: float = 30.0) -> None:
        self.channel = channel(address, credentials=credentials)
        self.stub = labels_pb2_grpc.LabelStoreServiceStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")]
        self.timeout_s = timeout_s

    def close(self) -> None:
        self.channel.close()

    def _call(self, method, request):
        return method(request, metadata=self.metadata, timeout=self.timeout_s)

    def tasks(self) -> list[L.Task]:
        return list(self._call(self.stub.ListTasks, L.ListTasksRequest()).tasks)

    def queue_page(self, task: str, page_token: str = "", page_size: int = 500) -> L.ListQueueResponse:
        return self._call(self.stub.ListQueue, L.ListQueueRequest(task=task, page_size=page_size, page_token=page_token))

    def samples(self, task: str, sample_ids: list[str]) -> list[L.Sample]:
        request = L.ListSamplesRequest(filter=L.SampleFilter(tasks=[task], sample_ids=sample_ids), page_size=len(sample_ids))
        return list(self._call(self.stub.ListSamples, request).samples)

    def sample(self, sample_id: str) -> L.GetSampleResponse:
        return self._call(self.stub.GetSample, L.GetSampleRequest(sample_id=sample_id))

    def lease(self, task: str, user: str, sample_id: str, lease_s: float) -> L.LabelLease | None:
        request = L.GetNextTaskRequest(task=task, labeller_id=user, sample_id=sample_id, lease_duration=Duration(seconds=int(lease_s)))
        response = self._call(self.stub.GetNextTask, request)
        return response.lease if response.HasField("lease") else None

    def submit(self, lease_id: str, idempotency_key: str, label: L.Label) -> L.SubmitLabelResponse:
        return self._call(self.stub.SubmitLabel, L.SubmitLabelRequest(lease_id=lease_id, idempotency_key=idempotency_key, label=label))

    def release(self, lease_id: str, reason: str) -> None:
        self._call(self.stub.ReleaseLease, L.ReleaseLeaseRequest(lease_id=lease_id, reason=reason[:500]))
