"""Label Studio's REST API, what the bridge needs of it (`Authorization: Token <t>`).

Connection failures, timeouts, 429 and 5xx are retried with exponential backoff (Label Studio
restarting must not lose work: the label store keeps its queue and the bridge tries again); a 4xx
is the caller's mistake and raises StudioError at once with Label Studio's own explanation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from longtail.log import get_logger

log = get_logger(__name__)


class StudioError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Label Studio answered {status}: {message}")
        self.status = status


class StudioUnavailable(StudioError):
    """Label Studio did not answer within the retries."""


class StudioClient:
    def __init__(self, url: str, token: str, retries: int = 5, backoff_s: float = 0.5, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Token {token}"}
        self.retries, self.backoff_s = retries, backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, json: Any = None, params: dict | None = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self.headers, timeout=self.timeout)
        delay, last = self.backoff_s, ""
        for attempt in range(self.retries + 1):
            try:
                async with self._session.request(method, f"{self.url}{path}", json=json, params=params) as r:
                    body = await r.text()
                    if r.status < 400:
                        return await r.json(content_type=None) if body else None
                    if r.status != 429 and r.status < 500:
                        raise StudioError(r.status, body[:500])
                    last = f"{r.status} {body[:200]}"
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                log.warning("label studio unavailable, retrying", method=method, path=path, error=last, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise StudioUnavailable(503, f"{method} {path}: {last}")

    # -- projects -------------------------------------------------------------------------------
    async def projects(self) -> list[dict]:
        found = await self.request("GET", "/api/projects/", params={"page_size": 1000})
        return found["results"] if isinstance(found, dict) else found

    async def project(self, project_id: int) -> dict:
        return await self.request("GET", f"/api/projects/{project_id}/")

    async def create_project(self, title: str, label_config: str, description: str) -> dict:
        return await self.request("POST", "/api/projects/", json={"title": title, "label_config": label_config, "description": description})

    async def validate_config(self, project_id: int, label_config: str) -> None:
        """Label Studio's strict check of a new config against the project's annotations."""
        await self.request("POST", f"/api/projects/{project_id}/validate/", json={"label_config": label_config})

    async def update_project(self, project_id: int, **fields: Any) -> dict:
        return await self.request("PATCH", f"/api/projects/{project_id}/", json=fields)

    # -- tasks ----------------------------------------------------------------------------------
    async def import_tasks(self, project_id: int, tasks: list[dict]) -> Any:
        return await self.request("POST", f"/api/projects/{project_id}/import", json=tasks, params={"return_task_ids": "true"})

    async def tasks(self, project_id: int) -> list[dict]:
        """Every task of the project (id, data, is_labeled), page by page."""
        out: list[dict] = []
        page = 1
        while True:
            try:
                found = await self.request("GET", "/api/tasks/", params={"project": project_id, "page": page, "page_size": 500, "fields": "all"})
            except StudioError as exc:
                if exc.status == 404:  # past the last page
                    return out
                raise
            batch = found.get("tasks", []) if isinstance(found, dict) else found
            out += batch
            if len(batch) < 500:
                return out
            page += 1

    async def task(self, task_id: int) -> dict | None:
        try:
            return await self.request("GET", f"/api/tasks/{task_id}/")
        except StudioError as exc:
            if exc.status == 404:
                return None
            raise

    async def annotations(self, task_id: int) -> list[dict]:
        return await self.request("GET", f"/api/tasks/{task_id}/annotations/") or []

    async def delete_task(self, task_id: int) -> None:
        try:
            await self.request("DELETE", f"/api/tasks/{task_id}/")
        except StudioError as exc:
            if exc.status != 404:  # gone already
                raise

    # -- webhooks -------------------------------------------------------------------------------
    async def webhooks(self, project_id: int) -> list[dict]:
        return await self.request("GET", "/api/webhooks/", params={"project": project_id})

    async def create_webhook(self, project_id: int, url: str, actions: list[str], headers: dict[str, str]) -> dict:
        return await self.request("POST", "/api/webhooks/", json={"project": project_id, "url": url, "send_payload": True, "send_for_all_actions": False, "actions": actions, "headers": headers, "is_active": True})

    async def user(self, user_id: int) -> dict:
        return await self.request("GET", f"/api/users/{user_id}/")
