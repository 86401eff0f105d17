"""Chunks aligned to lines: every line is read by exactly one chunk, whatever the chunk size."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_pywren.executor.data.partitioner import check_chunking, split_object
from airflow_pywren.executor.data.reader import aligned_blocks
from airflow_pywren.executor.errors import PyWrenSubmitError


class CountingOpener:
    """Opens byte ranges of an in-memory object, counting the requests (one GET each)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> io.BytesIO:
        self.requests.append((start, end))
        return io.BytesIO(self.data[start:end])


def read_chunks(data: bytes, chunk_size: int, read_ahead: int = 64 * 1024, block: int = 1024 * 1024):
    opener = CountingOpener(data)
    chunks = [
        b"".join(aligned_blocks(opener, start, end, len(data), read_ahead, block))
        for start, end in split_object(len(data), chunk_size, None)
    ]
    return chunks, opener


def lines_of(data: bytes) -> list[bytes]:
    """Lines ending in b"\n" (CRLF lines keep their b"\r"); a last line may have no newline."""
    pieces = data.split(b"\n")
    return [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def assert_exact_cover(data: bytes, chunks: list[bytes]) -> None:
    assert b"".join(chunks) == data  # nothing lost, nothing twice, in order
    non_empty = [chunk for chunk in chunks if chunk]
    for chunk in non_empty[:-1]:
        assert chunk.endswith(b"\n")  # no line is split between chunks
    lines = [line for chunk in chunks for line in lines_of(chunk)]
    assert lines == lines_of(data)


lines = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=60)


@settings(max_examples=400, deadline=None)
@given(
    lines=lines,
    newline=st.sampled_from([b"\n", b"\r\n"]),
    final_newline=st.booleans(),
    chunk_size=st.integers(min_value=1, max_value=300),
    read_ahead=st.integers(min_value=1, max_value=80),
    block=st.integers(min_value=1, max_value=64),
)
def test_union_of_chunks_is_the_object(lines, newline, final_newline, chunk_size, read_ahead, block):
    data = newline.join(lines) + (newline if final_newline and lines else b"")
    chunks, _ = read_chunks(data, chunk_size, read_ahead, block)
    assert_exact_cover(data, chunks)


@pytest.mark.parametrize(
    "data",
    [
        b"a\nbb\nccc\n",
        b"a\nbb\nccc",
        b"a\r\nbb\r\nccc\r\n",
        b"a\r\nbb\r\nccc",
        b"\n\n\n",
        b"x",
        b"no newline at all here",
        b"\n",
        b"long line " * 50 + b"\nshort\n",
    ],
    ids=[
        "ends-newline",
        "last-line-without-newline",
        "crlf",
        "crlf-last-without",
        "empty-lines",
        "one-byte",
        "one-line",
        "one-newline",
        "line-longer-than-chunks",
    ],
)
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 64, 10_000])
def test_named_cases(data, chunk_size):
    chunks, _ = read_chunks(data, chunk_size)
    assert_exact_cover(data, chunks)


def test_line_counts_match_one_process_count():
    data = b"".join(b"%d,GET,/index.html,200\n" % i for i in range(5000))
    for chunk_size in (100, 4096, 33_333):
        chunks, _ = read_chunks(data, chunk_size)
        assert sum(chunk.count(b"\n") for chunk in chunks) == 5000


def test_one_ranged_request_per_chunk_when_lines_are_short():
    data = b"".join(b"line %06d\n" % i for i in range(10_000))
    chunks, opener = read_chunks(data, 7_000)
    assert len(opener.requests) == len(chunks) == len(split_object(len(data), 7_000, None))
    for (start, end), (nominal_start, nominal_end) in zip(opener.requests, split_object(len(data), 7_000, None)):
        assert start == max(nominal_start - 1, 0) and end <= nominal_end + 64 * 1024


def test_a_line_longer_than_the_read_ahead_is_finished_with_further_ranges():
    data = b"short\n" + b"x" * 5000 + b"\nend\n"
    chunks, opener = read_chunks(data, 4, read_ahead=100)
    assert_exact_cover(data, chunks)
    assert len(opener.requests) > len(chunks)  # the chunk holding the long line asked for more


def test_split_by_chunk_n():
    assert split_object(10, None, 3) == [(0, 4), (4, 8), (8, 10)]
    assert split_object(2, None, 5) == [(0, 1), (1, 2)]  # never an empty nominal range
    assert split_object(0, None, 4) == [(0, 0)]
    assert split_object(10, None, None) == [(0, 10)]


@pytest.mark.parametrize(
    "chunk_size, chunk_n, message",
    [
        (0, None, "chunk_size must be a positive int"),
        (-5, None, "chunk_size must be a positive int"),
        (None, 0, "chunk_n must be a positive int"),
        (1.5, None, "chunk_size must be a positive int, got float"),
        ("64MB", None, "got str"),
        (True, None, "got bool"),
        (1024, 4, "not both"),
    ],
)
def test_bad_chunking_is_refused(chunk_size, chunk_n, message):
    with pytest.raises(PyWrenSubmitError, match=message):
        check_chunking(chunk_size, chunk_n)
