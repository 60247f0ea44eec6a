"""Type aliases shared by every layer."""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["BytesLike"]

#: Anything seqs accepts as frame or payload bytes.  Views are never copied
#: unless a layer must keep the bytes beyond the call.
BytesLike: TypeAlias = bytes | bytearray | memoryview
