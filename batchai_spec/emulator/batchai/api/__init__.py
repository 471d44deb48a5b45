"""The Batch AI 2018-05-01 REST API, as azure-mgmt-batchai 7.0.0 calls it (reference batchai-api.md §3-§4)."""
