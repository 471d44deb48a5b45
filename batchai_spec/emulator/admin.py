"""The admin API under `/_emulator/` on the ARM port (same bearer token): health, reset, fault rules."""

from __future__ import annotations

import re

from starlette.responses import Response

from batchai_spec.emulator.arm.responses import arm_empty, arm_json
from batchai_spec.emulator.faults import FaultBook, FaultRule
from batchai_spec.emulator.routing import Call, Router, ServiceError
from batchai_spec.emulator.state import State


def add_admin_routes(router: Router, faults: FaultBook) -> None:
    def health(state: State, call: Call) -> Response:
        return arm_json({"status": "ok", "subscription_id": state.subscription_id})

    def reset(state: State, call: Call) -> Response:
        faults.clear()
        state.reset()
        return arm_empty(204)

    def add_fault(state: State, call: Call) -> Response:
        document = call.json()
        if not isinstance(document, dict):
            raise ServiceError(400, "InvalidRequestContent", "A fault rule is a JSON object.")
        document.pop("id", None)
        try:
            rule = faults.add(FaultRule(**document))
        except (TypeError, ValueError, re.error) as error:
            raise ServiceError(400, "InvalidFaultRule", str(error))
        return arm_json(rule.to_json(), 201)

    def list_faults(state: State, call: Call) -> Response:
        return arm_json({"value": [rule.to_json() for rule in faults.list()]})

    def clear_faults(state: State, call: Call) -> Response:
        faults.clear()
        return arm_empty(204)

    router.add("GET", "/_emulator/health", health)
    router.add("POST", "/_emulator/reset", reset)
    router.add("POST", "/_emulator/faults", add_fault)
    router.add("GET", "/_emulator/faults", list_faults)
    router.add("DELETE", "/_emulator/faults", clear_faults)
