"""LocalStore specifics: links, special files, entity tags, keys, and the factory."""

from __future__ import annotations

import os

import pytest

from spherex_archive.store import (
    FsspecStore,
    LocalStore,
    NotFound,
    is_release_key,
    normalise_key,
    open_store,
)


@pytest.fixture
def root(tmp_path):
    """A tiny bucket root: qr2/a/file.txt, qr2/b.bin, truth/secret.txt, outside/secret.txt."""
    (tmp_path / "root/qr2/a").mkdir(parents=True)
    (tmp_path / "root/qr2/a/file.txt").write_text("hello\n")
    (tmp_path / "root/qr2/b.bin").write_bytes(bytes(range(256)))
    (tmp_path / "root/truth").mkdir()
    (tmp_path / "root/truth/secret.txt").write_text("truth\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret.txt").write_text("outside\n")
    return tmp_path / "root"


def test_links_inside_the_visible_tree_are_followed(root):
    (root / "qr2/alias").symlink_to("a")
    (root / "qr2/alias.txt").symlink_to("a/file.txt")
    (root / "qr3").symlink_to("qr2")
    store = LocalStore(root)
    assert store.read_range("qr2/alias.txt", 0, 100) == b"hello\n"
    assert {e.name for e in store.list("qr2/alias")} == {"file.txt"}
    assert store.stat("qr3/b.bin").size == 256
    assert {e.name for e in store.list("")} == {"qr2", "qr3"}


@pytest.mark.parametrize(
    "target",
    ["../../outside", "../../outside/secret.txt", "../truth", "../truth/secret.txt", "/etc", ".."],
)
def test_links_leading_out_are_missing_and_unlisted(root, target):
    (root / "qr2/trap").symlink_to(target)
    store = LocalStore(root)
    for key in ("qr2/trap", "qr2/trap/secret.txt", "qr2/trap/passwd"):
        with pytest.raises(NotFound):
            store.stat(key)
        with pytest.raises(NotFound):
            store.read_range(key, 0, 10)
    assert "trap" not in {e.name for e in store.list("qr2")}


def test_a_link_turned_to_lead_out_after_it_was_read_is_refused(root):
    """The store remembers resolved keys: a link re-pointed outside must not ride on that."""
    (root / "qr2/moving").symlink_to("a")
    store = LocalStore(root)
    assert store.read_range("qr2/moving/file.txt", 0, 5) == b"hello"
    (root / "qr2/moving").unlink()
    (root / "qr2/moving").symlink_to("../../outside")
    (root.parent / "outside/file.txt").write_text("stolen\n")
    with pytest.raises(NotFound):
        store.read_range("qr2/moving/file.txt", 0, 5)
    (tmp := root / "qr2/a/file.txt.new").write_text("other\n")
    os.replace(tmp, root / "qr2/a/file.txt")  # a file replaced in place: read anew
    (root / "qr2/moving").unlink()
    (root / "qr2/moving").symlink_to("a")
    assert store.read_range("qr2/moving/file.txt", 0, 5) == b"other"
    (root / "qr2/moving").unlink()
    with pytest.raises(NotFound):
        store.stat("qr2/moving/file.txt")


def test_a_root_reached_through_a_link_still_works(root, tmp_path):
    (tmp_path / "link-to-root").symlink_to(root)
    store = LocalStore(tmp_path / "link-to-root")
    assert store.read_range("qr2/a/file.txt", 0, 5) == b"hello"


def test_link_loops_are_missing(root):
    (root / "qr2/loop").symlink_to("loop")
    store = LocalStore(root)
    with pytest.raises(NotFound):
        store.stat("qr2/loop")
    assert "loop" not in {e.name for e in store.list("qr2")}


def test_special_files_are_never_opened(root):
    os.mkfifo(root / "qr2/pipe")  # reading a FIFO would block the server forever
    store = LocalStore(root)
    with pytest.raises(NotFound):
        store.stat("qr2/pipe")
    with pytest.raises(NotFound):
        store.open("qr2/pipe")
    assert "pipe" not in {e.name for e in store.list("qr2")}


def test_the_filter_can_be_replaced_or_dropped(root):
    assert {e.name for e in LocalStore(root, allow=None).list("")} == {"qr2", "truth"}
    only_a = LocalStore(root, allow=lambda key: key.startswith("qr2/a") or key == "qr2")
    assert {e.name for e in only_a.list("qr2")} == {"a"}
    with pytest.raises(NotFound):
        only_a.stat("qr2/b.bin")


def test_etag_is_strong_and_follows_content_changes(root):
    store = LocalStore(root)
    before = store.stat("qr2/b.bin")
    assert before.etag and not before.etag.startswith("W/")
    assert store.stat("qr2/b.bin").etag == before.etag
    path = root / "qr2/b.bin"
    path.write_bytes(bytes(256))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert store.stat("qr2/b.bin").etag != before.etag


def test_iter_range_on_a_missing_file_fails_at_the_call(root):
    with pytest.raises(NotFound):
        LocalStore(root).iter_range("qr2/none.bin", 0, 10)


def test_iter_range_stops_if_the_file_shrinks(root):
    store = LocalStore(root)
    chunks = store.iter_range("qr2/b.bin", 0, 256, 100)
    first = next(chunks)
    (root / "qr2/b.bin").write_bytes(bytes(150))  # truncated in place, same inode
    assert len(first) == 100
    assert sum(len(c) for c in chunks) == 50


def test_root_must_be_a_folder(root):
    with pytest.raises(FileNotFoundError):
        LocalStore(root / "missing")
    with pytest.raises(NotADirectoryError):
        LocalStore(root / "qr2/b.bin")


@pytest.mark.parametrize(
    ("key", "expected"),
    [("", ""), ("qr2", "qr2"), ("qr2/", "qr2"), ("qr2/a/b.fits", "qr2/a/b.fits")],
)
def test_normalise_key(key, expected):
    assert normalise_key(key) == expected


@pytest.mark.parametrize(
    "key", ["/", "//", "/qr2", "qr2//a", "qr2/../a", "..", ".", "a\\b", "a\x00", "a\tb", "a\x7f"]
)
def test_normalise_key_refuses(key):
    with pytest.raises(NotFound):
        normalise_key(key)


@pytest.mark.parametrize(
    ("key", "visible"),
    [
        ("qr", True),
        ("qr2", True),
        ("qr3/level2/x.fits", True),
        ("qr10", True),
        ("truth", False),
        ("truth/qr2", False),
        ("qr2x", False),
        ("Qr2", False),
        ("xqr2", False),
    ],
)
def test_release_keys(key, visible):
    assert is_release_key(key) is visible


def test_open_store_chooses_the_backend(root):
    assert isinstance(open_store(root), LocalStore)
    assert isinstance(open_store(str(root)), LocalStore)
    from_url = open_store(f"file://{root}")
    assert isinstance(from_url, LocalStore) and from_url.root == root.resolve()
    s3 = open_store("s3://some-bucket/prefix", anon=True, endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, FsspecStore) and s3.base == "some-bucket/prefix"
    assert open_store(root, allow=None).allow is None
