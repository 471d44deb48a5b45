"""Set and Get File Service Properties through ShareServiceClient: each element kept per account, defaults for
those never set, and Azure's refusals."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.fileshare import CorsRule, Metrics, RetentionPolicy


def test_properties_are_kept_element_by_element(storage_account):
    service = storage_account.service()
    defaults = service.get_service_properties()
    assert (defaults["hour_metrics"].enabled, defaults["minute_metrics"].enabled, defaults["cors"]) == (False, False, [])

    hourly = Metrics(enabled=True, include_apis=True, retention_policy=RetentionPolicy(enabled=True, days=5))
    assert service.set_service_properties(hour_metrics=hourly) is None
    service.set_service_properties(cors=[CorsRule(["www.xyz.com"], ["GET", "PUT"], max_age_in_seconds=500)])
    answered = service.get_service_properties()
    hour = answered["hour_metrics"]
    assert (hour.enabled, hour.include_apis, hour.retention_policy.enabled, hour.retention_policy.days) == (
        True, True, True, 5)
    assert answered["minute_metrics"].enabled is False  # never set: the default
    [rule] = answered["cors"]
    assert (rule.allowed_origins, rule.allowed_methods, rule.max_age_in_seconds) == ("www.xyz.com", "GET,PUT", 500)


@pytest.mark.parametrize("refused", [
    {"cors": [CorsRule(["www.xyz.com"], ["GET"])] * 6},
    {"hour_metrics": Metrics(enabled=True, include_apis=True, retention_policy=RetentionPolicy(enabled=True, days=366))},
])
def test_what_azure_refuses(storage_account, refused):
    with pytest.raises(HttpResponseError) as raised:
        storage_account.service().set_service_properties(**refused)
    assert raised.value.error_code == "InvalidXmlDocument"
