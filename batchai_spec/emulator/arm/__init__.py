"""Azure Resource Manager: resource groups, storage accounts, bearer-token auth, ARM-shaped answers."""
