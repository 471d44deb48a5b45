"""The kinds every service on Azure shares: ARM resource groups and storage accounts, and Azure Files shares,
directories and files. `batchai_spec/services/batchai/__init__.py` registers them with Batch AI's own."""
