"""Label Studio (`longtail infra up --label-studio`): the labelling front end people use in a
browser, on loopback, with an admin account and an API token made on first start.

It is installed once, pinned, in its own virtualenv under the cache (its ~160 dependencies, Django
among them, do not mix with the services'); its database (SQLite) and media live in the state
directory. The admin's login and token are generated once and kept in `credentials.json` beside
them (0600), so a restart keeps them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from longtail_dev.infra.launcher import Component, InfraError, _port, _run, cache_dir

LABEL_STUDIO_VERSION = "1.23.2"
ADMIN = "admin@longtail.local"
# Label Studio's install sees none of this project's Python: its own virtualenv only
ISOLATED = {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1", "VIRTUAL_ENV": ""}


class LabelStudio(Component):
    ready_timeout = 240.0  # the first start runs Django's migrations (about a minute here)

    def __init__(self) -> None:
        super().__init__("label-studio", {"http": _port("LONGTAIL_LABEL_STUDIO_PORT", 18090)})
        self.venv = cache_dir() / f"label-studio-{LABEL_STUDIO_VERSION}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def binary(self) -> Path:
        return self.venv / "bin" / "label-studio"

    def install(self, say: Callable[[str], None]) -> None:
        if (self.venv / ".complete").exists():
            return
        say(f"installing Label Studio {LABEL_STUDIO_VERSION} in its own virtualenv {self.venv} (once, about 2 minutes) ...")
        log = self.home / "install.log"
        alone = {**os.environ, **ISOLATED}
        _run([sys.executable, "-m", "venv", "--clear", str(self.venv)], log, "creating Label Studio's virtualenv", env=alone)
        _run([str(self.venv / "bin" / "pip"), "install", "-q", "--no-compile", "--disable-pip-version-check", f"label-studio=={LABEL_STUDIO_VERSION}"], log, f"pip install label-studio=={LABEL_STUDIO_VERSION}", env=alone)
        (self.venv / ".complete").write_text(LABEL_STUDIO_VERSION)

    def credentials(self) -> dict[str, str]:
        """The admin's login and API token: made once, then read back."""
        path = self.home / "credentials.json"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            made = {"username": ADMIN, "password": secrets.token_urlsafe(12), "token": secrets.token_hex(20)}
            path.touch(mode=0o600)
            path.write_text(json.dumps(made))
        return json.loads(path.read_text())

    def _settings(self) -> dict[str, str]:
        login = self.credentials()
        return {
            "PYTHONNOUSERSITE": "1",
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.home / "data"),
            "LABEL_STUDIO_USERNAME": login["username"],
            "LABEL_STUDIO_PASSWORD": login["password"],
            "LABEL_STUDIO_USER_TOKEN": login["token"],
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # `Authorization: Token <t>`, what the bridge sends
            "SSRF_PROTECTION_ENABLED": "false",  # its webhooks go to the bridge on loopback
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            # nothing leaves the machine: no error reporting, no version check, no analytics
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
        }

    def command(self):
        env = self._settings()
        # --internal-host is the address it binds (default 0.0.0.0); --host only the URL in its links
        cmd = [str(self.binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.ports["http"]), "--host", self.url]
        # A clean environment: Label Studio reads any variable named like one of its settings
        # (DATABASE_URL, USERNAME, ...), and ours name the services' own.
        return ["env", "-i", *(f"{k}={v}" for k, v in self._clean_env(env).items()), *cmd], {}, {"cwd": str(self.home)}

    def _clean_env(self, env: dict[str, str]) -> dict[str, str]:
        keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
        return {**keep, **env}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def after_ready(self) -> None:
        """The token must work before anyone relies on it (a data directory from an earlier
        installation may hold another admin)."""
        request = urllib.request.Request(f"{self.url}/api/current-user/whoami", headers={"Authorization": f"Token {self.credentials()['token']}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except OSError as exc:
            raise InfraError(f"Label Studio is up but refuses its admin token ({exc}); its data directory {self.home / 'data'} may come from another installation: stop it and remove that directory") from None

    def env(self) -> dict[str, str]:
        login = self.credentials()
        return {"LABEL_STUDIO_URL": self.url, "LABEL_STUDIO_TOKEN": login["token"], "LABEL_STUDIO_USERNAME": login["username"], "LABEL_STUDIO_PASSWORD": login["password"]}

    def create_user(self, email: str, password: str) -> None:
        """A labeller's account in the admin's organization, made with Label Studio's own models
        (its shell): it signs in with the email and password and is who its annotations name."""
        script = (
            "from users.models import User\n"
            "from organizations.models import Organization, OrganizationMember\n"
            f"u = User.objects.filter(email={email!r}).first() or User.objects.create_user(email={email!r}, password={password!r}, username={email!r})\n"
            f"u.set_password({password!r})\n"
            "org = Organization.objects.order_by('id').first()\n"
            "OrganizationMember.objects.filter(user=u, organization=org).exists() or org.add_user(u)\n"
            "u.active_organization = org\n"
            "u.save()\n"
            "print('LONGTAIL-USER-OK', u.id)\n"
        )
        env = self._clean_env(self._settings())
        done = subprocess.run([str(self.binary), "shell"], input=script, capture_output=True, text=True, env=env, timeout=300, cwd=str(self.home))
        if "LONGTAIL-USER-OK" not in done.stdout:
            raise InfraError(f"creating Label Studio user {email} failed: {(done.stderr or done.stdout)[-800:]}")
