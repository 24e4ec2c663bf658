"""byok: a bring-your-own-keys gateway for LLM APIs (the proxy shell)."""

__version__ = "0.1.0"
