"""The framework's fake key: a valid base64 string, never a real account's."""

STORAGE_ACCOUNT_FAKE_KEY = "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFy"
