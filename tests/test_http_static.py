"""The static-file handler (``seqs.http.StaticFiles``): ranges (RFC 9110 §14),
conditional requests, content types, and never a byte from outside the root."""

from __future__ import annotations

import email.utils
import os
import pathlib
import shutil
import tempfile

import pytest

from seqs.http import FileBody, Request, Response, StaticFiles, parse_range


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "a.txt").write_text("hello\n")
    (www / "page.html").write_text("<p>hi</p>")
    (www / "data.bin").write_bytes(bytes(range(256)) * 4)
    (www / "arch.tar.gz").write_bytes(b"\x1f\x8b")
    (www / "sub" / "index.html").write_text("sub index")
    (www / "sub dir").mkdir()
    (tmp_path / "secret.txt").write_text("outside the root")
    (www / "escape").symlink_to(tmp_path / "secret.txt")
    return www


def get(files: StaticFiles, target: str, *headers: tuple[str, str], method: str = "GET") -> Response:
    return files(Request(method, target, list(headers)))


def body_of(r: Response) -> bytes:
    b = r.body
    if isinstance(b, FileBody):
        with open(b.path, "rb") as f:
            f.seek(b.offset)
            return f.read(b.length if b.length is not None else -1)
    assert isinstance(b, bytes)
    return b


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=50-500", 100, (50, 99)),
        ("bytes=100-", 100, "unsatisfiable"),
        ("bytes=-0", 100, "unsatisfiable"),
        ("bytes=0-0,5-6", 100, None),  # several ranges: the whole file (RFC 9110 §14.2 allows it)
        ("bytes=9-1", 100, None),  # invalid: ignored
        ("items=0-1", 100, None),
        ("bytes=x-1", 100, None),
        ("bytes=0-1", 0, "unsatisfiable"),
    ],
)
def test_parse_range(header: str, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    "target",
    ["/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
     "/..%2fsecret.txt", "/escape", "/a.txt%00.html", "/..\\secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt"],
)
def test_no_path_leaves_the_root(root: pathlib.Path, target: str) -> None:
    r = get(StaticFiles(root), target)
    assert r.status == 404
    assert b"outside" not in body_of(r)


def test_file_with_type_length_and_validators(root: pathlib.Path) -> None:
    r = get(StaticFiles(root), "/a.txt")
    assert r.status == 200 and body_of(r) == b"hello\n"
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert r.header("accept-ranges") == "bytes" and r.header("last-modified")
    assert get(StaticFiles(root), "/page.html").header("content-type") == "text/html; charset=utf-8"
    assert get(StaticFiles(root), "/data.bin").header("content-type") == "application/octet-stream"
    # a compressed archive is served as the bytes it is, not as "tar with gzip encoding"
    assert get(StaticFiles(root), "/arch.tar.gz").header("content-type") == "application/gzip"


def test_single_range_is_206_with_content_range(root: pathlib.Path) -> None:
    r = get(StaticFiles(root), "/data.bin", ("range", "bytes=10-19"))
    assert r.status == 206 and r.header("content-range") == "bytes 10-19/1024"
    assert body_of(r) == bytes(range(10, 20))


def test_unsatisfiable_range_is_416_with_the_size(root: pathlib.Path) -> None:
    r = get(StaticFiles(root), "/data.bin", ("range", "bytes=5000-"))
    assert r.status == 416 and r.header("content-range") == "bytes */1024"


def test_multi_range_gets_the_whole_file(root: pathlib.Path) -> None:
    r = get(StaticFiles(root), "/data.bin", ("range", "bytes=0-1,4-5"))
    assert r.status == 200 and len(body_of(r)) == 1024


def test_if_range_with_an_old_date_sends_everything(root: pathlib.Path) -> None:
    old = email.utils.formatdate(0, usegmt=True)
    r = get(StaticFiles(root), "/data.bin", ("range", "bytes=0-1"), ("if-range", old))
    assert r.status == 200
    lm = get(StaticFiles(root), "/data.bin").header("last-modified")
    assert lm is not None
    r = get(StaticFiles(root), "/data.bin", ("range", "bytes=0-1"), ("if-range", lm))
    assert r.status == 206


def test_if_modified_since_gives_304(root: pathlib.Path) -> None:
    lm = get(StaticFiles(root), "/a.txt").header("last-modified")
    assert lm is not None
    assert get(StaticFiles(root), "/a.txt", ("if-modified-since", lm)).status == 304
    past = email.utils.formatdate(0, usegmt=True)
    assert get(StaticFiles(root), "/a.txt", ("if-modified-since", past)).status == 200


def test_other_methods_get_405_with_allow(root: pathlib.Path) -> None:
    r = get(StaticFiles(root), "/a.txt", method="POST")
    assert r.status == 405 and r.header("allow") == "GET, HEAD"


def test_directory_redirects_to_its_slash_then_serves_its_index(root: pathlib.Path) -> None:
    r = get(StaticFiles(root), "/sub")
    assert r.status == 301 and r.header("location") == "/sub/"
    assert body_of(get(StaticFiles(root), "/sub/")) == b"sub index"
    assert get(StaticFiles(root), "/sub%20dir").header("location") == "/sub%20dir/"


def test_directory_without_index_is_listed_with_escaped_names(root: pathlib.Path) -> None:
    r = get(StaticFiles(root), "/")
    page = body_of(r).decode()
    assert r.status == 200 and 'href="a.txt"' in page and 'href="sub%20dir/"' in page
    assert get(StaticFiles(root, listing=False), "/sub dir/").status == 404


def test_missing_file_is_404_and_root_must_be_a_directory(root: pathlib.Path) -> None:
    assert get(StaticFiles(root), "/nope").status == 404
    with pytest.raises(NotADirectoryError):
        StaticFiles(root / "a.txt")


def test_unreadable_file_is_403(tmp_path: pathlib.Path) -> None:
    # Root reads a mode-0 file regardless, so as root the request is made by a forked child
    # that has become nobody (65534), in a tree that nobody may enter.
    www = pathlib.Path(tempfile.mkdtemp(prefix="seqs-403-"))
    try:
        www.chmod(0o755)
        (www / "open.txt").write_text("y")
        (www / "open.txt").chmod(0o644)
        locked = www / "locked"
        locked.write_text("x")
        locked.chmod(0)
        if os.geteuid() != 0:
            assert get(StaticFiles(www), "/locked").status == 403
            assert get(StaticFiles(www), "/open.txt").status == 200
            return
        pid = os.fork()
        if pid == 0:  # the child: report the two statuses through the exit code
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                statuses = (get(StaticFiles(www), "/locked").status, get(StaticFiles(www), "/open.txt").status)
                code = 0 if statuses == (403, 200) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "as nobody: expected 403 for the mode-0 file, 200 beside it"
    finally:
        shutil.rmtree(www)
