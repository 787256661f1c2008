"""Integrations with other libraries, each imported only when asked for.

``aiofastread.contrib.aiohttp``: ``FileResponse``, aiohttp's own with a file
side that never waits for the disk on the loop (needs the ``aiohttp`` extra).
"""
