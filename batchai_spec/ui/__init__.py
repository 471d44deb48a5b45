"""How engine events reach people (Rich on a TTY, plain lines otherwise) and machines (JSON lines)."""
