"""The simulated Meeting Server's call detail records: what it POSTs to the CDR receivers configured under
/api/v1/system/cdrReceivers, as the server does.

A part of simulators/cisco_cms.py. Each record goes, as it happens, to every receiver's `uri` (HTTP or HTTPS;
the simulator does not check a receiver's certificate) in the server's envelope:

    <?xml version="1.0"?>
    <records session="<guid: this run>" callBridge="<guid: this server>">
      <record type="callLegEnd" time="2026-12-02T10:09:08Z" recordIndex="7" correlatorIndex="7">
        <callLeg id="..."><reason>remoteBusy</reason><remoteTeardown>true</remoteTeardown>
          <durationSeconds>0</durationSeconds></callLeg>
      </record>
    </records>

Types: callStart (call: name, callType, coSpace, callCorrelator), callLegStart (callLeg: displayName,
remoteParty, remoteAddress, localAddress, type, direction, call, groupId), callLegUpdate (callLeg: state, call,
deactivated, groupId, sipCallId, remoteAddress, canMove), callLegEnd (callLeg: reason, remoteTeardown,
durationSeconds) and callEnd (call: callLegsCompleted, callLegsMaxActive, durationSeconds). A receiver that
does not answer loses that record (the sender waits at most 5 seconds), as a real receiver outage does.
"""

from __future__ import annotations

import contextlib
import queue
import ssl
import threading
import time
import urllib.request
import uuid
from typing import Any
from xml.etree import ElementTree as ET


class CdrSender:
    """Numbers the records and posts them, in order, from a thread of its own."""

    def __init__(self, call_bridge: str) -> None:
        self.session = str(uuid.uuid4())
        self.call_bridge = call_bridge
        self.receivers: dict[str, str] = {}  # id -> uri (the bridge's lock guards changes)
        self._index = 0
        self._queue: queue.Queue[tuple[list[str], bytes] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="cdr", daemon=True)
        self._thread.start()

    def record(self, kind: str, tag: str, object_id: str, values: list[tuple[str, Any]]) -> None:
        if not self.receivers:
            return
        self._index += 1
        root = ET.Element("records", session=self.session, callBridge=self.call_bridge)
        record = ET.SubElement(root, "record", type=kind, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               recordIndex=str(self._index), correlatorIndex=str(self._index))
        element = ET.SubElement(record, tag, id=object_id)
        for name, value in values:
            if value is None:
                continue
            child = ET.SubElement(element, name)
            child.text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        body = b'<?xml version="1.0"?>\n' + ET.tostring(root, encoding="utf-8")
        self._queue.put((list(self.receivers.values()), body))

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        while True:
            item = self._queue.get()
            if item is None:
                return
            uris, body = item
            for uri in uris:
                request = urllib.request.Request(uri, data=body, method="POST",  # noqa: S310 - the configured uri
                                                 headers={"Content-Type": "text/xml"})
                with contextlib.suppress(OSError, ValueError):
                    urllib.request.urlopen(request, timeout=5, context=context).close()  # noqa: S310
