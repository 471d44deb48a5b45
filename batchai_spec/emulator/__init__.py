"""The local Azure emulator: ARM (resource groups, storage accounts), Azure Files and, beside them, Batch AI.

It shares no code with the client side; the official SDKs talk to it over HTTPS on 127.0.0.1.
"""
