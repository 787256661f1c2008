"""aiofiles 25.1's surface, as data: which members are async, sync, properties.

Read from aiofiles/threadpool/{binary,text}.py and tempfile/temptypes.py
(their ``delegate_to_executor`` / ``proxy_method_directly`` /
``proxy_property_directly`` lists; where a name is in two lists the outer
decorator wins, so text ``readable`` is async). tests/test_threadpool.py
checks these against aiofiles itself and against our classes.
"""

from __future__ import annotations

BUFFERED_ASYNC = frozenset(
    {
        "close", "flush", "isatty", "read", "read1", "readinto", "readline", "readlines",
        "seek", "seekable", "tell", "truncate", "writable", "write", "writelines",
    }
)  # fmt: skip
BUFFERED_SYNC = frozenset({"detach", "fileno", "readable"})
BUFFERED_PROPERTIES = frozenset({"closed", "raw", "name", "mode"})

BUFFERED_READER_ASYNC = BUFFERED_ASYNC | {"peek"}

FILEIO_ASYNC = frozenset(
    {
        "close", "flush", "isatty", "read", "readall", "readinto", "readline", "readlines",
        "seek", "seekable", "tell", "truncate", "writable", "write", "writelines",
    }
)  # fmt: skip
FILEIO_SYNC = frozenset({"fileno", "readable"})
FILEIO_PROPERTIES = frozenset({"closed", "name", "mode"})

TEXT_ASYNC = frozenset(
    {
        "close", "flush", "isatty", "read", "readable", "readline", "readlines", "seek",
        "seekable", "tell", "truncate", "write", "writable", "writelines",
    }
)  # fmt: skip
TEXT_SYNC = frozenset({"detach", "fileno"})
TEXT_PROPERTIES = frozenset(
    {"buffer", "closed", "encoding", "errors", "line_buffering", "newlines", "name", "mode"}
)

SPOOLED_ASYNC = frozenset(
    {
        "fileno", "rollover", "close", "flush", "isatty", "read", "readline", "readlines",
        "seek", "tell", "truncate", "write", "writelines",
    }
)  # fmt: skip
SPOOLED_SYNC: frozenset[str] = frozenset()
SPOOLED_PROPERTIES = frozenset({"closed", "encoding", "mode", "name", "newlines"})

TEMPDIR_ASYNC = frozenset({"cleanup", "close"})
TEMPDIR_SYNC: frozenset[str] = frozenset()
TEMPDIR_PROPERTIES = frozenset({"name"})
