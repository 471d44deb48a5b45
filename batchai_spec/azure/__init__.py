"""Azure adapters: the only client-side code that imports the Azure SDKs."""
