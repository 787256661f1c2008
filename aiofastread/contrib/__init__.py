"""Integrations with other libraries, each imported only when asked for.

``aiofastread.contrib.aiohttp``: ``FileResponse``, aiohttp's own with a file
side that never waits for the disk on the loop (the ``aiohttp`` extra).
``aiofastread.contrib.starlette``: ``FileResponse`` and ``StaticFiles``
reading with aiofastread (the ``starlette`` extra).
``aiofastread.contrib.sanic``: ``file``/``file_stream`` and ``install()``
for Sanic's own helpers (the ``sanic`` extra). docs/adapters.md.
"""
