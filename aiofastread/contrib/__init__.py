"""Integrations with other libraries (web frameworks), each imported only when asked for."""
