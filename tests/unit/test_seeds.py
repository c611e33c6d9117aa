import io
from collections import Counter

import pytest

from palette.common.seeds import (
    SeedError,
    SeedFormat,
    buffered,
    count_records,
    pick_seeds,
    read_records,
    seed_index,
)

pytestmark = pytest.mark.unit


def records(data: bytes, fmt: SeedFormat | None = None) -> list[dict]:
    return list(read_records(io.BytesIO(data), fmt))


class TestSeedParsing:
    @pytest.mark.parametrize(
        "data",
        [b'[{"a": 1}, {"a": 2}]', b'{"a": 1}\n\n{"a": 2}\n', b"a\n1\n2\n"],
        ids=["json", "jsonl", "csv"],
    )
    def test_reads_each_format(self, data: bytes) -> None:
        assert [str(r["a"]) for r in records(data)] == ["1", "2"]

    @pytest.mark.parametrize(
        ("data", "problem"),
        [
            (b"", "empty"),
            (b"\xff\xfe{}", "UTF-8"),
            (b'[{"a": 1}, {"a":', "truncated"),
            (b"[1, 2]", "must be a JSON object"),
            (b'{"a": 1}\n{"a": \n', "line 2"),
            (b"a,b\n1,2\n3\n", "row has 1 fields"),
            (b'{"a": ' * 10_000, "nested too deeply"),
            (b"[" + b'{"a": 1}' + b"]" + b"", None),
        ],
    )
    def test_bad_files_name_the_problem(self, data: bytes, problem: str | None) -> None:
        if problem is None:
            assert records(data) == [{"a": 1}]
            return
        with pytest.raises(SeedError, match=problem):
            records(data)

    @pytest.mark.parametrize(
        ("data", "fmt", "problem", "line"),
        [
            (b"product\nok\n\xffno\n", SeedFormat.CSV, "^byte 0xff at offset 11 is not UTF-8", 3),
            (b"", SeedFormat.JSONL, "the file is empty", None),
            (b"", SeedFormat.JSON, "the file is empty", None),
            (b'[{"a": "\xff"}]', SeedFormat.JSON, "^byte 0xff at offset 8 is not UTF-8", 1),
            (
                b'[{"a": 1}, {"a": 2',
                SeedFormat.JSON,
                "^invalid or truncated JSON: parse error",
                None,
            ),
        ],
    )
    def test_problems_name_the_line_and_read_plainly(
        self, data: bytes, fmt: SeedFormat, problem: str, line: int | None
    ) -> None:
        with pytest.raises(SeedError, match=problem) as caught:
            records(data, fmt)
        assert caught.value.line == line

    def test_nothing_is_read_before_the_first_record_is_asked_for(self) -> None:
        stream = io.BytesIO(b"")
        reader = read_records(stream, SeedFormat.JSONL)
        assert stream.tell() == 0
        with pytest.raises(SeedError, match="empty"):
            next(reader)

    def test_csv_keeps_quoted_newlines_and_crlf_lines(self) -> None:
        data = b'\xef\xbb\xbfa,b\r\n"one\ntwo",2\r\n'
        assert records(data, SeedFormat.CSV) == [{"a": "one\ntwo", "b": "2"}]

    def test_too_many_columns_is_refused(self) -> None:
        header = ",".join(f"c{i}" for i in range(100_000)).encode()
        with pytest.raises(SeedError, match="columns"):
            records(header + b"\n" + b"," * 99_999 + b"\n")

    def test_counts_records_of_a_large_stream(self) -> None:
        data = b"".join(b'{"i": %d}\n' % i for i in range(20_000))
        assert count_records(read_records(io.BytesIO(data), SeedFormat.JSONL)) == 20_000


FORMATS = {
    SeedFormat.JSON: '[{"a": "caf\u00e9"}, {"a": "x"}]',
    SeedFormat.JSONL: '{"a": "caf\u00e9"}\n{"a": "x"}\n',
    SeedFormat.CSV: "a\ncaf\u00e9\nx\n",
}
NAMED = [
    pytest.param(fmt, named, id=f"{fmt}-{'named' if named else 'sniffed'}")
    for fmt in FORMATS
    for named in (True, False)
]


class TestSeedEncoding:
    """Every format is UTF-8: a BOM is dropped, anything else is refused naming the encoding."""

    @pytest.mark.parametrize(("fmt", "named"), NAMED)
    def test_a_utf8_byte_order_mark_is_accepted(self, fmt: SeedFormat, named: bool) -> None:
        data = b"\xef\xbb\xbf" + FORMATS[fmt].encode()
        assert records(data, fmt if named else None) == [{"a": "caf\u00e9"}, {"a": "x"}]

    @pytest.mark.parametrize(("fmt", "named"), NAMED)
    @pytest.mark.parametrize(
        ("codec", "problem"),
        [
            ("utf-16", r"^seed file is UTF-16 \(byte-order mark\), not UTF-8$"),
            ("utf-16-le", r"^seed file looks like UTF-16 \(NUL bytes between characters\)"),
            ("utf-16-be", r"^seed file looks like UTF-16 \(NUL bytes between characters\)"),
            ("utf-32", r"^seed file is UTF-32 \(byte-order mark\), not UTF-8$"),
        ],
    )
    def test_utf16_and_utf32_are_refused_naming_the_encoding(
        self, fmt: SeedFormat, named: bool, codec: str, problem: str
    ) -> None:
        with pytest.raises(SeedError, match=problem):
            records(FORMATS[fmt].encode(codec), fmt if named else None)

    @pytest.mark.parametrize(("fmt", "named"), NAMED)
    def test_a_stray_0xff_is_refused_with_its_offset_and_line(
        self, fmt: SeedFormat, named: bool
    ) -> None:
        data = FORMATS[fmt].encode()
        offset = data.index(b"x")
        with pytest.raises(SeedError, match=rf"^byte 0xff at offset {offset} is not UTF-8") as bad:
            records(data.replace(b"x", b"\xff"), fmt if named else None)
        assert bad.value.line == data[:offset].count(b"\n") + 1

    def test_the_offset_counts_the_bom_and_bytes_past_the_first_chunks(self) -> None:
        body = b"".join(b'{"i": %d}\n' % i for i in range(20_000))
        data = b"\xef\xbb\xbf" + body + b'{"i": "\xfe"}\n'
        with pytest.raises(SeedError, match=rf"offset {len(body) + 3 + 7} is not") as bad:
            count_records(read_records(io.BytesIO(data), SeedFormat.JSONL))
        assert bad.value.line == 20_001

    def test_a_character_split_by_the_first_read_is_accepted(self) -> None:
        text = "a\n" + "\u00e9" * 400 + "\n"  # 2-byte characters across byte 512
        assert records(text.encode(), SeedFormat.CSV) == [{"a": "\u00e9" * 400}]

    def test_a_file_that_ends_inside_a_character_is_refused(self) -> None:
        with pytest.raises(SeedError, match=r"^byte 0xc3 at offset 6 is not UTF-8 \(line 3\)$"):
            records(b"a\nb\ncd\xc3", SeedFormat.CSV)


class TestSeedSampling:
    def test_same_job_and_index_draw_the_same_seed(self) -> None:
        assert [seed_index("job", i, 50) for i in range(100)] == [
            seed_index("job", i, 50) for i in range(100)
        ]

    def test_draws_spread_over_all_seeds(self) -> None:
        counts = Counter(seed_index("job-x", i, 10) for i in range(10_000))
        assert set(counts) == set(range(10))
        assert min(counts.values()) > 800

    def test_pick_keeps_only_wanted_positions(self) -> None:
        rows = [{"i": i} for i in range(100)]
        assert pick_seeds(iter(rows), {3, 97}) == {3: {"i": 3}, 97: {"i": 97}}

    def test_pick_reports_a_short_file(self) -> None:
        with pytest.raises(SeedError, match="fewer records"):
            pick_seeds(iter([{"i": 0}]), {5})


class ChunkedBody(io.RawIOBase):
    """Like botocore's StreamingBody: an IOBase whose iteration yields fixed-size chunks."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(lambda: self._data.read(7), b"")


class TestS3Bodies:
    def test_jsonl_from_a_chunk_iterating_body_is_read_by_lines(self) -> None:
        data = b"".join(b'{"i": %d}\n' % i for i in range(50))
        assert [r["i"] for r in read_records(ChunkedBody(data), SeedFormat.JSONL)] == list(
            range(50)
        )

    def test_buffered_body_reads_lines_and_closes_its_source(self) -> None:
        body = ChunkedBody(b"a\nbb\n")
        stream = buffered(body)
        assert stream.readline() == b"a\n"
        assert stream.read() == b"bb\n"
        stream.close()
        assert body.closed

    def test_read_records_leaves_the_callers_stream_open(self) -> None:
        body = ChunkedBody(b'{"i": 1}\n')
        assert list(read_records(body, SeedFormat.JSONL)) == [{"i": 1}]
        assert not body.closed
