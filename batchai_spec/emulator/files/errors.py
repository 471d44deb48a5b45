"""Storage error answers: XML body plus `x-ms-error-code` (HEAD answers have no body, so the header counts).

Details follow the message as elements, as the service sends them (`<MaxLimit>4194304</MaxLimit>`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from starlette.responses import Response

from batchai_spec.emulator.routing import ServiceError


def render_storage_error(error: ServiceError) -> Response:
    request_id = str(uuid.uuid4())
    moment = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}\n"
        f"RequestId:{request_id}\nTime:{moment}</Message>"
        + "".join(f"<{name}>{escape(value)}</{name}>" for name, value in error.details.items())
        + "</Error>"
    )
    headers = {"x-ms-error-code": error.code, "x-ms-request-id": request_id, **error.headers}
    return Response(body.encode(), status_code=error.status, headers=headers, media_type="application/xml")
