"""A small static-file server that reads with aiofastread (or aiofiles).

    pip install -e ".[examples]"
    python examples/static_server.py --root /var/tmp/www --port 8080 [--aiofiles]
    python examples/load.py --url http://127.0.0.1:8080/ --root /var/tmp/www

Hot files are served from the page cache inline on the loop; only misses go
to a thread. ``--aiofiles`` switches the same handler to aiofiles (one thread
hop per read) for comparison.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any

from aiohttp import web

CHUNK = 64 << 10  # one inline read per 64 KiB: ~10 us when cached


def make_app(root: Path, files: Any) -> web.Application:
    async def serve(request: web.Request) -> web.StreamResponse:
        path = (root / request.match_info["name"]).resolve()
        if root not in path.parents or not path.is_file():
            raise web.HTTPNotFound()
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        async with files.open(path, "rb") as f:
            while chunk := await f.read(CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{name:.+}", serve)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="directory to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--aiofiles", action="store_true", help="read with aiofiles instead")
    args = parser.parse_args()
    files = importlib.import_module("aiofiles" if args.aiofiles else "aiofastread")
    print(f"serving {args.root} with {files.__name__} (pid {os.getpid()})")
    web.run_app(make_app(args.root.resolve(), files), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
