"""Maps over data in storage (localhost and COS on moto), URLs and local files, end to end."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.data import plan_data
from airflow_pywren.executor.errors import DataChangedError, DataSourceError, PyWrenSubmitError

LOG_A = b"".join(b"10.0.0.%d GET /page/%d 200\n" % (i % 7, i) for i in range(3000))
LOG_B = b"".join(b"10.0.1.%d POST /api/%d 500\r\n" % (i % 5, i) for i in range(2000))  # CRLF
LOG_C = b"".join(b"10.0.2.%d GET /last %d\n" % (i % 3, i) for i in range(1001)).rstrip(b"\n")  # no final newline


def count_lines(obj):
    return sum(1 for _ in obj.data_stream)


def lines_and_words(data_stream):
    lines = words = 0
    for line in data_stream:
        lines += 1
        words += len(line.split())
    return lines, words


def total(results):
    return [sum(column) for column in zip(*results)]


def put_logs(store, prefix="logs/2026-12-01/"):
    store.put(prefix + "a.log", LOG_A)
    store.put(prefix + "b.log", LOG_B)
    store.put(prefix + "c.log", LOG_C)
    store.put("other/ignored.log", b"not under the prefix\n")


def expected(*blobs):
    return [sum(len(b.split(b"\n")) - (b.endswith(b"\n")) for b in blobs), sum(len(b.split()) for b in blobs)]


@pytest.mark.parametrize("form", ["{b}/logs/2026-12-01/", "cos://{b}/logs/2026-12-01/", "s3://{b}/logs/2026-12-01/"])
def test_partitioned_map_reduce_over_a_prefix_counts_every_line_once(pw, store, form):
    put_logs(store)
    futures = pw.map_reduce(lines_and_words, form.format(b=store.bucket), total, chunk_size=16_384)
    assert pw.storage.request_counts["GET"] == 0  # the client planned from the listing and read no object
    assert len(futures) == 1 + sum(-(-len(b) // 16_384) for b in (LOG_A, LOG_B, LOG_C))
    assert pw.get_result() == expected(LOG_A, LOG_B, LOG_C)


def test_a_whole_bucket_and_one_call_per_object_without_chunking(pw, store):
    put_logs(store)

    def name_and_lines(obj):
        return obj.key, obj.part, obj.parts, obj.data_byte_range, obj.chunk_size, count_lines(obj)

    assert pw.get_result(pw.map(name_and_lines, store.bucket + "/")) == pw.get_result(
        pw.map(name_and_lines, store.bucket)
    )
    futures = pw.map(name_and_lines, store.bucket)
    assert pw.get_result(futures) == [
        ("logs/2026-12-01/a.log", 0, 1, (0, len(LOG_A)), None, 3000),
        ("logs/2026-12-01/b.log", 0, 1, (0, len(LOG_B)), None, 2000),
        ("logs/2026-12-01/c.log", 0, 1, (0, len(LOG_C)), None, 1001),
        ("other/ignored.log", 0, 1, (0, 21), None, 1),
    ]


@pytest.mark.parametrize("reducer_wait_local", [False, True])
def test_one_reducer_per_object_in_object_order(pw, store, reducer_wait_local):
    put_logs(store)
    futures = pw.map_reduce(
        count_lines,
        f"cos://{store.bucket}/logs/",
        sum,
        chunk_n=5,
        reducer_one_per_object=True,
        reducer_wait_local=reducer_wait_local,
    )
    assert len(futures) == 3 * 5 + 3
    assert pw.get_result() == [3000, 2000, 1001]


def test_a_list_of_keys_with_the_legacy_parameters(pw, store):
    put_logs(store)

    def legacy(bucket, key, data_stream):
        return bucket, key, len(data_stream.read())

    keys = [f"{store.bucket}/logs/2026-12-01/b.log", f"cos://{store.bucket}/logs/2026-12-01/a.log"]
    pw.map(legacy, keys)
    assert pw.get_result() == [
        (store.bucket, f"{store.bucket}/logs/2026-12-01/b.log", len(LOG_B)),
        (store.bucket, f"{store.bucket}/logs/2026-12-01/a.log", len(LOG_A)),
    ]


def test_the_pywren_1_0_positional_chunk_size(pw, store):
    """PyWren 1.0's README form: ``map_reduce(my_map_function, bucket_name, my_reduce_function, chunk_size)``."""
    put_logs(store)

    def my_map_function(bucket, key, data_stream):
        return sum(1 for _ in data_stream)

    def sizes(obj):
        return obj.chunk_size, obj.parts

    futures = pw.map_reduce(my_map_function, f"{store.bucket}/logs/", sum, 16_384)
    assert len(futures) == 1 + sum(-(-len(b) // 16_384) for b in (LOG_A, LOG_B, LOG_C))
    assert pw.get_result() == 3000 + 2000 + 1001
    pw.map_reduce(my_map_function, f"{store.bucket}/logs/", list, 16_384, reducer_one_per_object=True)
    assert [sum(counts) for counts in pw.get_result()] == [3000, 2000, 1001]
    pw.map(sizes, f"{store.bucket}/logs/2026-12-01/a.log", chunk_size=16_384)
    assert set(pw.get_result()) == {(16_384, -(-len(LOG_A) // 16_384))}


@pytest.mark.parametrize(
    ("fourth", "chunk_size", "message"),
    [
        ("yes", None, "reducer_wait_local must be True or False, got 'yes'"),
        (-5, None, "reducer_wait_local must be True or False, got -5"),
        (16_384, 1024, "chunk_size=1024 and a fourth argument 16384"),
    ],
)
def test_a_fourth_argument_that_is_neither_a_flag_nor_a_chunk_size_is_refused(pw, store, fourth, chunk_size, message):
    put_logs(store)
    with pytest.raises(PyWrenSubmitError, match=message):
        pw.map_reduce(count_lines, f"{store.bucket}/logs/", sum, fourth, chunk_size=chunk_size)
    assert pw.futures == []


def test_dict_items_carry_other_arguments_and_id_is_the_call_index(pw, store):
    put_logs(store)

    def grep(obj, word, id):
        return id, sum(word in line for line in obj.data_stream)

    pw.map(
        grep,
        [
            {"obj": f"{store.bucket}/logs/2026-12-01/a.log", "word": b"/page/1"},
            {"obj": f"{store.bucket}/logs/2026-12-01/b.log", "word": b"500"},
        ],
    )
    assert pw.get_result() == [(0, sum(b"/page/1" in x for x in LOG_A.splitlines())), (1, 2000)]


def test_data_functions_also_get_storage_ibm_cos_and_id(pw, store, storage_kind):
    put_logs(store)

    def count_and_store(bucket, key, data_stream, storage, ibm_cos, id, on_cos):
        lines = sum(1 for _ in data_stream)
        storage.put_object(bucket, f"counts/{id:03d}.txt", f"{key} {lines}\n")
        if on_cos:  # the original's ibm_cos client reaches the same bucket
            return ibm_cos.head_object(Bucket=bucket, Key=key.split("/", 1)[1])["ContentLength"]
        return None

    prefix = f"cos://{store.bucket}/logs/2026-12-01/"
    sizes = pw.get_result(pw.map(count_and_store, prefix, extra_args={"on_cos": storage_kind == "ibm_cos"}))
    assert sizes == ([len(LOG_A), len(LOG_B), len(LOG_C)] if storage_kind == "ibm_cos" else [None] * 3)
    written = pw.get_result(pw.map(lambda data_stream: data_stream.read(), f"{store.bucket}/counts/"))
    assert written == [
        f"{store.bucket}/logs/2026-12-01/{name}.log {n}\n".encode()
        for name, n in (("a", 3000), ("b", 2000), ("c", 1001))
    ]


def test_lineage_reports_only_the_outputs_the_job_wrote(pw, store, storage_kind):
    from airflow_pywren.executor.jobs import reference_of
    from airflow_pywren.operators.lineage import job_lineage

    put_logs(store)
    store.put("before/old.txt", b"written by an earlier run\n")
    if storage_kind == "localhost":  # an object from an hour ago (S3 cannot backdate one)
        hour_ago = time.time() - 3600
        os.utime(store.root / store.bucket / "before" / "old.txt", (hour_ago, hour_ago))

    def count_and_store(obj, storage):
        storage.put_object(obj.bucket, f"counts/{obj.part}-{obj.key.rsplit('/', 1)[-1]}", b"1\n")
        return 1

    futures = pw.map(count_and_store, f"{store.bucket}/logs/")
    pw.wait(futures)
    ref = reference_of(pw, "map", futures)
    declared = [f"cos://{store.bucket}/counts/", f"cos://{store.bucket}/never-written/", f"{store.bucket}/before/"]
    inputs, outputs = job_lineage(pw, ref, declared)
    names = [d["name"].rsplit(store.bucket + "/", 1)[-1] if d["namespace"] == "file" else d["name"] for d in outputs]
    assert names == (["counts/"] if storage_kind == "localhost" else ["counts/", "before/"])
    assert [d["name"].endswith("logs/") for d in inputs] == [True]
    namespace = "file" if storage_kind == "localhost" else f"s3://{store.bucket}"  # OpenLineage's naming
    assert {d["namespace"] for d in inputs + outputs} == {namespace}


def test_call_async_over_one_object_in_its_forms(pw, store):
    put_logs(store)

    def legacy(bucket, key, data_stream):
        return bucket, key, len(data_stream.read())

    def grep(obj, word):
        return obj.key, obj.parts, sum(word in line for line in obj.data_stream)

    lines = pw.call_async(count_lines, f"cos://{store.bucket}/logs/2026-12-01/a.log")
    by_key = pw.call_async(legacy, f"{store.bucket}/logs/2026-12-01/b.log")
    with_args = pw.call_async(grep, {"obj": f"s3://{store.bucket}/logs/2026-12-01/c.log", "word": b"last 10"})
    only_object = pw.call_async(count_lines, f"{store.bucket}/other/")  # a prefix holding one object
    assert lines.result() == 3000
    assert by_key.result() == (store.bucket, f"{store.bucket}/logs/2026-12-01/b.log", len(LOG_B))
    assert with_args.result() == ("logs/2026-12-01/c.log", 1, sum(b"last 10" in x for x in LOG_C.splitlines()))
    assert only_object.result() == 1
    assert pw.job_inputs[lines.job_id]["locations"] == [f"cos://{store.bucket}/logs/2026-12-01/a.log"]


def test_inputs_of_many_locations_are_reported_by_directory_then_by_bucket(pw, store):
    few_dirs = [f"{store.bucket}/day-{i % 4}/part-{i}.log" for i in range(24)]
    many_dirs = [f"{store.bucket}/day-{i}/part-{i}.log" for i in range(24)]
    for key in {*few_dirs, *many_dirs}:
        store.put(key.split("/", 1)[1], b"one line\n")

    def names(keys):
        datasets = plan_data(count_lines, keys, pw.storage).summary()["datasets"]
        return sorted(d["name"].rsplit(store.bucket, 1)[-1].lstrip("/") for d in datasets)

    assert names(few_dirs[:20]) == sorted(key.split("/", 1)[1] for key in few_dirs[:20])
    assert names(few_dirs) == [f"day-{i}/" for i in range(4)]  # 24 keys in 4 directories
    assert names(many_dirs) == [""]  # 24 directories: the bucket


def test_call_async_refuses_data_that_names_several_objects(pw, store):
    put_logs(store)
    with pytest.raises(PyWrenSubmitError, match="names 3 objects; use map"):
        pw.call_async(count_lines, f"cos://{store.bucket}/logs/2026-12-01/")
    with pytest.raises(DataSourceError, match="no object 'logs/missing.log'"):
        pw.call_async(count_lines, f"{store.bucket}/logs/missing.log")
    assert pw.futures == []  # nothing was invoked


def test_call_async_over_a_url_and_a_file(local_pw, http_files, tmp_path):
    http_files.files["/logs/a.log"] = LOG_A
    (tmp_path / "c.log").write_bytes(LOG_C)

    def by_url(url, data_stream):
        return url, sum(1 for _ in data_stream)

    url = http_files.url + "/logs/a.log"
    assert local_pw.call_async(by_url, url).result() == (url, 3000)
    assert http_files.requests[("GET", "/logs/a.log")] == 1
    assert local_pw.call_async(count_lines, tmp_path / "c.log").result() == 1001


def test_call_async_of_a_plain_function_keeps_a_location_string_as_its_value(local_pw):
    def shout(text):
        return text.upper()

    assert local_pw.call_async(shout, "cos://bucket/key").result() == "COS://BUCKET/KEY"


def test_a_key_without_slash_that_is_a_directory_reads_its_objects(pw, store):
    put_logs(store)
    pw.map(count_lines, [f"{store.bucket}/logs/2026-12-01"])
    assert pw.get_result() == [3000, 2000, 1001]


def test_listing_is_paginated_past_1000_keys_and_reads_nothing(pw, store, storage_kind):
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: store.put(f"many/{i:05d}.txt", b"x\n" * (i % 3 + 1)), range(1005)))
    lists_before = pw.storage.request_counts["LIST"]
    plan = plan_data(count_lines, f"{store.bucket}/many/", pw.storage, chunk_size=2)
    assert len(plan.objects) == 1005
    assert sum(o.size for o in plan.objects) == sum(2 * (i % 3 + 1) for i in range(1005))
    assert len(plan.parts) == sum(i % 3 + 1 for i in range(1005))
    assert pw.storage.request_counts["GET"] == 0 and pw.storage.request_counts["HEAD"] == 0
    if storage_kind == "ibm_cos":
        assert pw.storage.request_counts["LIST"] - lists_before == 2  # one per page of 1,000 keys


def test_many_keys_of_one_directory_are_described_by_listing_it(pw, store, storage_kind):
    for index in range(40):
        store.put(f"day/{index:02d}.log", b"a b\n")
    plan = plan_data(count_lines, [f"{store.bucket}/day/{i:02d}.log" for i in reversed(range(40))], pw.storage)
    assert [o.key for o in plan.objects] == [f"day/{i:02d}.log" for i in reversed(range(40))]
    assert pw.storage.request_counts["HEAD"] == 0


@pytest.mark.parametrize(
    "iterdata, message",
    [
        ("{b}/nothing/here/", "names no objects: nothing under prefix 'nothing/here/'"),
        ("no-such-bucket-{u}/logs/", "bucket 'no-such-bucket-"),
        ("{b}/logs/2026-12-01/missing.log", "no object 'logs/2026-12-01/missing.log'"),
        ("gs://{b}/x", "scheme 'gs'"),
        ("/{b}/x", "starts with '/'"),
    ],
)
def test_bad_locations_fail_at_submit(pw, store, iterdata, message):
    put_logs(store)
    with pytest.raises(DataSourceError, match=message):
        pw.map(count_lines, iterdata.format(b=store.bucket, u=time.time_ns()))
    assert pw.futures == []  # nothing was invoked


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chunk_size": 0}, "chunk_size must be a positive int"),
        ({"chunk_n": -1}, "chunk_n must be a positive int"),
        ({"chunk_size": 1024, "chunk_n": 2}, "not both"),
        ({"chunk_size": "1MB"}, "got str"),
        ({"chunk_n": 2.0}, "got float"),
    ],
)
def test_bad_chunking_fails_at_submit(pw, store, kwargs, message):
    put_logs(store)
    with pytest.raises(PyWrenSubmitError, match=message):
        pw.map_reduce(count_lines, f"{store.bucket}/logs/", sum, **kwargs)


def test_a_location_given_to_a_function_without_data_parameters_is_explained(pw, store):
    with pytest.raises(PyWrenSubmitError, match="declares neither 'obj' nor 'data_stream'"):
        pw.map(len, f"cos://{store.bucket}/logs/")


def test_a_data_function_with_an_unfilled_parameter_is_refused(pw, store):
    put_logs(store)

    def needs_more(obj, threshold):
        return 0

    with pytest.raises(PyWrenSubmitError, match="parameter 'threshold' gets no value"):
        pw.map(needs_more, f"{store.bucket}/logs/")


def test_reducer_one_per_object_needs_data(local_pw):
    pw = local_pw
    with pytest.raises(PyWrenSubmitError, match="reducer_one_per_object=True needs a map over data"):
        pw.map_reduce(abs, [1, 2], sum, reducer_one_per_object=True)


def wait_for_go_then_count(obj, go_file):
    import os
    import time

    while not os.path.exists(go_file):
        time.sleep(0.02)
    return sum(1 for _ in obj.data_stream)


def test_an_object_changed_after_planning_fails_its_call_clearly(pw, store, tmp_path):
    put_logs(store)
    go = tmp_path / "go"
    futures = pw.map(
        wait_for_go_then_count,
        [{"obj": f"{store.bucket}/logs/2026-12-01/a.log", "go_file": str(go)}],
        chunk_size=10_000,
    )
    store.put("logs/2026-12-01/a.log", LOG_A + b"one more line\n")
    time.sleep(0.05)  # a new mtime on filesystems with coarse timestamps
    go.write_text("")
    with pytest.raises(DataChangedError, match="a.log changed after the job was planned"):
        pw.get_result(futures)


def test_files_on_this_machine(local_pw, tmp_path):
    pw = local_pw
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "one.csv").write_bytes(LOG_A)
    (tmp_path / "in" / "sub" / "two.csv").write_bytes(LOG_C)
    pw.map_reduce(count_lines, f"file://{tmp_path}/in/", sum, chunk_size=1000, reducer_one_per_object=True)
    assert pw.get_result() == [3000, 1001]
    pw.map(count_lines, [Path(tmp_path / "in" / "one.csv")])
    assert pw.get_result() == [3000]

    def where(obj):
        return obj.url, obj.key, obj.bucket, obj.chunk_size, obj.part

    pw.map(where, f"file://{tmp_path}/in/one.csv", chunk_n=2)
    assert [(url, key, chunk, part) for url, key, _, chunk, part in pw.get_result()] == [
        (f"file://{tmp_path}/in/one.csv", f"{tmp_path}/in/one.csv", -(-len(LOG_A) // 2), 0),
        (f"file://{tmp_path}/in/one.csv", f"{tmp_path}/in/one.csv", -(-len(LOG_A) // 2), 1),
    ]


def test_buckets_live_under_a_configured_data_root(localhost_config, tmp_path):
    lake = tmp_path / "lake"
    (lake / "lakeonly" / "logs").mkdir(parents=True)
    (lake / "lakeonly" / "logs" / "a.log").write_bytes(LOG_A)
    config = {**localhost_config, "localhost": {**localhost_config["localhost"], "data_dir": str(lake)}}

    def count_and_store(obj, storage):
        lines = count_lines(obj)
        storage.put_object(obj.bucket, f"counts/{obj.part}.txt", str(lines))
        return lines

    pw = pywren.ibm_cf_executor(config=config)
    try:
        pw.map_reduce(count_and_store, "cos://lakeonly/logs/", sum, chunk_n=3)
        assert pw.get_result() == 3000
        assert sum(int(p.read_text()) for p in (lake / "lakeonly" / "counts").iterdir()) == 3000
        assert not (Path(localhost_config["localhost"]["storage_dir"]) / "lakeonly").exists()
    finally:
        pw.clean()
        pw.close()


def test_file_locations_that_do_not_exist_fail_at_submit(local_pw, tmp_path):
    pw = local_pw
    with pytest.raises(DataSourceError, match="no file or directory"):
        pw.map(count_lines, f"file://{tmp_path}/absent/")


def test_urls_are_read_with_one_ranged_get_per_chunk(local_pw, http_files):
    http_files.files["/logs/a.log"] = LOG_A
    http_files.files["/logs/c.log"] = LOG_C
    urls = [http_files.url + "/logs/a.log", http_files.url + "/logs/c.log"]

    def by_url(url, data_stream):
        return url, sum(1 for _ in data_stream)

    futures = local_pw.map_reduce(
        by_url,
        urls,
        lambda results: (results[0][0], sum(n for _, n in results)),
        chunk_size=20_000,
        reducer_one_per_object=True,
    )
    assert local_pw.get_result() == [(urls[0], 3000), (urls[1], 1001)]
    chunks = len(futures) - 2
    assert chunks == -(-len(LOG_A) // 20_000) + -(-len(LOG_C) // 20_000)
    assert http_files.requests[("GET", "/logs/a.log")] + http_files.requests[("GET", "/logs/c.log")] == chunks
    assert http_files.requests[("HEAD", "/logs/a.log")] == 1  # discovery: one HEAD per URL, no GET


def test_a_url_chunk_knows_its_url_and_a_single_reducer_can_wait_locally(local_pw, http_files):
    http_files.files["/logs/a.log"] = LOG_A
    url = http_files.url + "/logs/a.log"

    def where(obj):
        return obj.url, obj.key, obj.chunk_size, obj.part, count_lines(obj)

    futures = local_pw.map_reduce(where, [url], list, chunk_size=20_000, reducer_wait_local=True)
    chunks = -(-len(LOG_A) // 20_000)
    assert len(futures) == chunks + 1
    results = local_pw.get_result()
    assert [r[:4] for r in results] == [(url, None, 20_000, part) for part in range(chunks)]
    assert sum(r[4] for r in results) == 3000


def test_a_server_without_ranges_is_read_whole_and_cannot_be_chunked(local_pw, http_files):
    http_files.ranges = False
    http_files.files["/a.log"] = LOG_A
    with pytest.raises(DataSourceError, match="does not answer Range requests"):
        local_pw.map(count_lines, [http_files.url + "/a.log"], chunk_n=4)
    local_pw.map(count_lines, [http_files.url + "/a.log"])
    assert local_pw.get_result() == [3000]


def test_unreachable_and_missing_urls_fail_at_submit(local_pw, http_files):
    with pytest.raises(DataSourceError, match="answered 404"):
        local_pw.map(count_lines, [http_files.url + "/missing.log"])
    closed_port = http_files.url.rsplit(":", 1)[0] + ":9"  # discard port: nothing listens on 127.0.0.1:9
    with pytest.raises(DataSourceError, match="cannot reach URL"):
        local_pw.map(count_lines, [closed_port + "/a.log"])


def test_a_url_changed_after_planning_fails_its_call(local_pw, http_files, tmp_path):
    http_files.files["/a.log"] = LOG_A
    go = tmp_path / "go"
    futures = local_pw.map(wait_for_go_then_count, [{"url": http_files.url + "/a.log", "go_file": str(go)}])
    http_files.files["/a.log"] = LOG_A.replace(b"GET", b"PUT")
    go.write_text("")
    with pytest.raises(DataChangedError, match="changed after the job was planned"):
        local_pw.get_result(futures)
