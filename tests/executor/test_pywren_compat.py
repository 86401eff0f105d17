"""Code written for the original PyWren runs unchanged: its documented call semantics, end to end.

Each test follows an example or a rule of the original documentation (multiple
parameters, reserved parameters, the executor's keywords), on the embedded localhost
backends and, where storage is involved, on the COS backend (moto S3 server).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import airflow_pywren as pywren
from airflow_pywren.executor.errors import FunctionExitError, PyWrenConfigError, PyWrenSubmitError
from tests.conftest import merge_config
from tests.services.s3 import s3_client


@pytest.fixture(params=["localhost", "ibm_cos"])
def storage_config(request, localhost_config):
    """Localhost compute with each storage backend."""
    if request.param == "localhost":
        return localhost_config
    return merge_config(localhost_config, request.getfixturevalue("cos_config"))


@pytest.fixture
def pw_storage(storage_config):
    executor = pywren.ibm_cf_executor(config=storage_config)
    yield executor
    executor.clean()
    executor.close()


def my_function(x, y):
    return x + y


def sum_list(list_of_numbers):
    total = 0
    for number in list_of_numbers:
        total += number
    return total


def sum_list_mult(list_of_numbers, x):
    return sum_list(list_of_numbers) * x


# --------------------------------------------------------------- multiple parameters
def test_call_async_spreads_a_list_and_maps_a_dict(pw):
    pw.call_async(my_function, [3, 6])
    assert pw.get_result() == 9
    pw.call_async(my_function, (3, 6))
    assert pw.get_result() == 9
    pw.call_async(my_function, {"x": 2, "y": 8})
    assert pw.get_result() == 10


def test_call_async_a_wrapped_list_is_one_argument(pw):
    pw.call_async(sum_list, [[1, 2, 3, 4, 5]])
    assert pw.get_result() == 15
    pw.call_async(sum_list, ([1, 2, 3, 4, 5],))
    assert pw.get_result() == 15
    pw.call_async(sum_list_mult, [[1, 2, 3, 4, 5], 5])
    assert pw.get_result() == 75
    pw.call_async(sum_list_mult, {"list_of_numbers": [1, 2, 3, 4, 5], "x": 3})
    assert pw.get_result() == 45


def test_map_with_multiple_parameters(pw):
    assert pw.get_result(pw.map(my_function, [[1, 2], [3, 4], [5, 6]])) == [3, 7, 11]
    assert pw.get_result(pw.map(my_function, [(1, 2), (3, 4), (5, 6)])) == [3, 7, 11]
    assert pw.get_result(pw.map(my_function, [{"x": 1, "y": 2}, {"x": 3, "y": 4}, {"x": 5, "y": 6}])) == [3, 7, 11]
    assert pw.get_result(pw.map(sum_list, [[[1, 2]], [[3, 4]], [[5, 6]]])) == [3, 7, 11]
    items = [[[1, 2, 3, 4, 5], 2], [[6, 7, 8, 9, 10], 3], [[11, 12, 13, 14, 15], 4]]
    assert pw.get_result(pw.map(sum_list_mult, items)) == [30, 120, 260]
    items = [{"list_of_numbers": [1, 2, 3, 4, 5], "x": 2}, {"list_of_numbers": [6, 7, 8, 9, 10], "x": 3}]
    assert pw.get_result(pw.map(sum_list_mult, items)) == [30, 120]


def test_map_lists_passed_whole_to_a_one_parameter_function(pw):
    # what Lithops does and code written for it expects: no need to wrap for one parameter
    assert pw.get_result(pw.map(sum_list, [[1, 2], [3, 4, 5]])) == [3, 12]


def test_map_of_scalars_and_a_one_item_map(pw):
    assert pw.get_result(pw.map(lambda x: x + 7, [1, 2, 3, 4])) == [8, 9, 10, 11]
    assert pw.get_result(pw.map(lambda x: x + 7, [1])) == [8]  # a list, unlike PyWren 1.0


def test_extra_args_and_extra_params(pw):
    def sum_x_y(x, y):
        return x + y

    assert pw.get_result(pw.map(sum_x_y, [0, 1, 2], extra_args=(10,))) == [10, 11, 12]
    assert pw.get_result(pw.map(sum_x_y, [0, 1, 2], extra_params=[10])) == [10, 11, 12]
    assert pw.get_result(pw.map(sum_x_y, [{"x": 1}], extra_args={"y": 5})) == [6]
    futures = pw.map_reduce(sum_x_y, [0, 1, 2], sum_list, extra_params=(1,))
    assert pw.get_result(futures) == 6
    with pytest.raises(PyWrenSubmitError, match="either extra_args or extra_params"):
        pw.map(sum_x_y, [1], extra_args=(1,), extra_params=(1,))


def test_an_item_that_does_not_fit_fails_before_anything_runs(pw):
    with pytest.raises(PyWrenSubmitError, match=r"iterdata item 1 .*my_function\(x, y\)"):
        pw.map(my_function, [[1, 2], [1, 2, 3]])
    assert pw.futures == []


# -------------------------------------------------------------- injected parameters
def test_id_is_the_call_index(pw):
    def my_map_function(id, x):
        return id, x + 7

    assert pw.get_result(pw.map(my_map_function, [10, 20, 30])) == [(0, 17), (1, 27), (2, 37)]
    assert pw.get_result(pw.call_async(my_map_function, 1)) == (0, 8)
    with pytest.raises(PyWrenSubmitError, match="'id' is an injected parameter"):
        pw.map(my_map_function, [{"id": 4, "x": 1}])


def test_storage_handle_on_every_storage_backend(pw_storage):
    def writer(key, value, storage):
        storage.put(f"user-data/{key}", value)
        return storage.get(f"user-data/{key}").decode()

    def reader(prefix, storage):
        return sorted(storage.list(prefix))

    def original_names(key, storage):
        bucket = storage.bucket
        storage.put_object(bucket, key, b"0123456789")
        parts = [
            storage.get_object(bucket, key),
            storage.get_object(bucket, key, stream=True).read(),
            storage.get_object(bucket, key, extra_get_args={"Range": "bytes=2-4"}),
        ]
        size = storage.head_object(bucket, key)["content-length"]
        keys = storage.list_keys(bucket, key)
        storage.delete_object(bucket, key)
        return parts, size, keys, storage.list_keys(bucket, key)

    assert pw_storage.get_result(pw_storage.map(writer, [["a", "1"], ["b", "2"]])) == ["1", "2"]
    assert pw_storage.get_result(pw_storage.call_async(reader, "user-data/")) == ["user-data/a", "user-data/b"]
    parts, size, keys, after = pw_storage.get_result(pw_storage.call_async(original_names, "user-data/c"))
    assert parts == [b"0123456789", b"0123456789", b"234"] and size == "10"
    assert keys == ["user-data/c"] and after == []
    pw_storage.storage.whole_bucket().delete_prefix("user-data/")  # user objects lie outside the job prefix


def test_internal_storage(pw_storage):
    def uses_internal(key, internal_storage):
        internal_storage.put_data(key, b"kept")
        return internal_storage.storage_handler.get(key), internal_storage.bucket, internal_storage.prefix

    data, bucket, prefix = pw_storage.get_result(pw_storage.call_async(uses_internal, "user-data/internal"))
    assert (data, bucket, prefix) == (b"kept", pw_storage.storage.bucket, pw_storage.storage.prefix)
    pw_storage.storage.whole_bucket().delete_prefix("user-data/")  # user objects lie outside the job prefix


def test_ibm_cos_client_on_cos_storage(localhost_config, cos_config):
    bucket = cos_config["ibm_cos"]["bucket"]

    def my_map_function(x, ibm_cos):
        ibm_cos.put_object(Bucket=bucket, Key=f"user-data/{x}", Body=str(x * 2).encode())
        return ibm_cos.get_object(Bucket=bucket, Key=f"user-data/{x}")["Body"].read().decode()

    with pywren.ibm_cf_executor(config=merge_config(localhost_config, cos_config)) as executor:
        assert executor.get_result(executor.map(my_map_function, [1, 2])) == ["2", "4"]
        executor.clean()
    client = s3_client(cos_config["ibm_cos"]["endpoint"])
    assert client.get_object(Bucket=bucket, Key="user-data/2")["Body"].read() == b"4"


def test_ibm_cos_client_with_localhost_storage_and_a_cos_section(localhost_config, cos_config):
    bucket = cos_config["ibm_cos"]["bucket"]
    config = merge_config(localhost_config, {"ibm_cos": cos_config["ibm_cos"]})  # storage stays localhost

    def count_objects(prefix, ibm_cos):
        ibm_cos.put_object(Bucket=bucket, Key=f"{prefix}/one", Body=b"1")
        return ibm_cos.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"]

    with pywren.ibm_cf_executor(config=config) as executor:
        assert executor.storage.name == "localhost"
        assert executor.get_result(executor.call_async(count_objects, "user-data")) == 1
        executor.clean()


def test_ibm_cos_without_cos_configured_fails_when_used_naming_the_fix(pw):
    def unused(x, ibm_cos):
        return x  # declaring it without COS is fine

    def used(x, ibm_cos):
        return ibm_cos.list_buckets()

    assert pw.get_result(pw.call_async(unused, 3)) == 3
    pw.call_async(used, 3)
    with pytest.raises(PyWrenConfigError, match=r"'ibm_cos'.*ibm_cos\.endpoint"):
        pw.get_result()


def test_rabbitmq_connection(localhost_config, rabbitmq_config):
    def publish(x, rabbitmq):
        channel = rabbitmq.channel()
        channel.queue_declare(queue="pywren-compat-test", auto_delete=False)
        channel.basic_publish(exchange="", routing_key="pywren-compat-test", body=str(x).encode())
        return rabbitmq.is_open

    config = merge_config(localhost_config, {"rabbitmq": rabbitmq_config["rabbitmq"]})
    with pywren.ibm_cf_executor(config=config) as executor:
        assert executor.get_result(executor.map(publish, [1, 2])) == [True, True]
        executor.clean()
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_config["rabbitmq"]["amqp_url"]))
    channel = connection.channel()
    bodies = sorted(channel.basic_get("pywren-compat-test", auto_ack=True)[2] for _ in range(2))
    channel.queue_delete("pywren-compat-test")
    connection.close()
    assert bodies == [b"1", b"2"]


def test_rabbitmq_without_amqp_url_fails_when_used(pw):
    def used(x, rabbitmq):
        return rabbitmq.channel()

    pw.call_async(used, 1)
    with pytest.raises(PyWrenConfigError, match=r"rabbitmq\.amqp_url"):
        pw.get_result()


# ---------------------------------------------------------------------------- exits
def exits(x):
    sys.exit(x)


def test_sys_exit_fails_the_call_and_the_client_lives_on(pw):
    pw.call_async(exits, 0)
    with pytest.raises(FunctionExitError, match=r"called sys\.exit\(0\)"):
        pw.get_result()
    assert pw.get_result(pw.map(lambda x: x, [1, 2])) == [1, 2]  # the workers still serve


def test_sys_exit_never_exits_a_client_script(tmp_path, localhost_config):
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        import airflow_pywren as pywren

        def leave(x):
            sys.exit(0)

        pw = pywren.ibm_cf_executor(config={localhost_config!r})
        pw.call_async(leave, 1)
        try:
            pw.get_result()
        except Exception as exc:
            print("raised", type(exc).__name__)
        print("still here")
    """)
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "raised FunctionExitError" in out.stdout and "still here" in out.stdout


class Custom(Exception):
    pass


def test_exceptions_are_reraised_with_their_type(pw):
    def fails(x):
        raise Custom(f"bad {x}")

    pw.call_async(fails, 1)
    with pytest.raises(Custom, match="bad 1"):
        pw.get_result()
