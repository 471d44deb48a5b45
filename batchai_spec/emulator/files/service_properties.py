"""Set and Get File Service Properties (`?restype=service&comp=properties` on the account): hour and minute
metrics, CORS rules and protocol settings, kept per account as Azure keeps them (the emulator records no metrics and
answers no CORS preflight: it keeps what a client set and answers it back).

A Set request replaces each element it carries and leaves the others as they were; Get answers every element, the
defaults Azure answers for those never set. Refused as Azure refuses them (400 InvalidXmlDocument): another root
element, more than 5 CORS rules, a retention policy that is enabled without 1-365 days.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from starlette.responses import Response

from batchai_spec.emulator.files.listing import xml_response
from batchai_spec.emulator.files.paths import RequestTarget
from batchai_spec.emulator.routing import Call, ServiceError
from batchai_spec.emulator.state import State, register_schema

register_schema(
    "CREATE TABLE IF NOT EXISTS file_service_properties ("
    " account TEXT NOT NULL, element TEXT NOT NULL, xml TEXT NOT NULL, PRIMARY KEY (account, element))"
)

_METRICS = "<{0}><Version>1.0</Version><Enabled>false</Enabled><RetentionPolicy><Enabled>false</Enabled>" \
           "</RetentionPolicy></{0}>"
DEFAULTS = {
    "HourMetrics": _METRICS.format("HourMetrics"),
    "MinuteMetrics": _METRICS.format("MinuteMetrics"),
    "Cors": "<Cors />",
    "ProtocolSettings": "<ProtocolSettings><SMB><Multichannel><Enabled>false</Enabled></Multichannel></SMB>"
                        "</ProtocolSettings>",
}
MAX_CORS_RULES = 5
MAX_RETENTION_DAYS = 365


def set_service_properties(state: State, call: Call, target: RequestTarget) -> Response:
    elements = _parse(call.body)
    with state.transaction() as db:
        db.executemany(
            "INSERT OR REPLACE INTO file_service_properties (account, element, xml) VALUES (?, ?, ?)",
            [(target.account, element.tag, ET.tostring(element, encoding="unicode")) for element in elements],
        )
    return Response(status_code=202)


def service_properties(state: State, call: Call, target: RequestTarget) -> Response:
    stored = dict(state.connection().execute(
        "SELECT element, xml FROM file_service_properties WHERE account = ?", (target.account,)
    ).fetchall())
    root = ET.Element("StorageServiceProperties")
    for name, default in DEFAULTS.items():
        root.append(ET.fromstring(stored.get(name, default)))
    return xml_response(root)


def _parse(body: bytes) -> list[ET.Element]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise _invalid("The XML specified is not syntactically valid.") from None
    if root.tag != "StorageServiceProperties":
        raise _invalid("The root element of the document is not StorageServiceProperties.")
    elements = [element for element in root if element.tag in DEFAULTS]
    for element in elements:
        if element.tag == "Cors" and len(element.findall("CorsRule")) > MAX_CORS_RULES:
            raise _invalid(f"A service allows at most {MAX_CORS_RULES} CORS rules.")
        retention = element.find("RetentionPolicy")
        if retention is not None and (retention.findtext("Enabled") or "").lower() == "true":
            days = retention.findtext("Days") or ""
            if not days.isdigit() or not 1 <= int(days) <= MAX_RETENTION_DAYS:
                raise _invalid(f"An enabled retention policy keeps data for 1 to {MAX_RETENTION_DAYS} days.")
    return elements


def _invalid(message: str) -> ServiceError:
    return ServiceError(400, "InvalidXmlDocument", message)
