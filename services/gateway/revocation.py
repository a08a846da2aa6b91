"""Revoked cars: a deny list the gateway reloads without a restart (issue #18).

GATEWAY_REVOKED_FILE names a text file (in Kubernetes a mounted ConfigMap or Secret), one entry per
line: a vehicle id, or `serial:<hex>` for one certificate (a car's replaced certificate, say);
`#` starts a comment. The gateway checks the file every GATEWAY_REVOCATION_CHECK_SECONDS and, when
it changed, closes the open sessions of every car it now revokes (PERMISSION_DENIED: "revoked");
every new session and upload of a revoked car or certificate is refused the same way. A file that
cannot be read keeps the last list (and says so in the log): an unreadable deny list must not
un-revoke anyone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client import Gauge

from longtail.log import get_logger

log = get_logger(__name__)

REVOKED = Gauge("longtail_gateway_revoked_entries", "Entries (vehicles and certificate serials) on the deny list in force", ["service"])


@dataclass
class RevocationList:
    path: str = ""
    vehicles: frozenset[str] = frozenset()
    serials: frozenset[int] = frozenset()
    _stamp: tuple[float, int] | None = field(default=None, repr=False)

    def revoked(self, vehicle_id: str, serial: int | None = None) -> bool:
        return vehicle_id in self.vehicles or (serial is not None and serial in self.serials)

    def reload(self) -> frozenset[str]:
        """Read the file if it changed; the vehicles newly revoked (their sessions are to close)."""
        if not self.path:
            return frozenset()
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime, stat.st_size)
            if stamp == self._stamp:
                return frozenset()
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            log.error("cannot read the deny list; keeping the last one", path=self.path, error=str(exc))
            return frozenset()
        vehicles, serials = set(), set()
        for number, raw in enumerate(text.splitlines(), 1):
            entry = raw.split("#", 1)[0].strip()
            if not entry:
                continue
            if entry.startswith("serial:"):
                try:
                    serials.add(int(entry.removeprefix("serial:"), 16))
                except ValueError:
                    log.error("deny list: not a hex serial; line ignored", path=self.path, line=number, entry=entry[:80])
            else:
                vehicles.add(entry)
        newly = frozenset(vehicles - self.vehicles)
        self.vehicles, self.serials, self._stamp = frozenset(vehicles), frozenset(serials), stamp
        REVOKED.labels("gateway").set(len(vehicles) + len(serials))
        log.info("deny list loaded", path=self.path, vehicles=len(vehicles), serials=len(serials), newly_revoked=len(newly))
        return newly
