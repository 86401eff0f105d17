"""The argument rule and the injected-parameter registry, as pure logic (no backend)."""

from __future__ import annotations

import pytest

from airflow_pywren.executor import calls
from airflow_pywren.executor.errors import PyWrenSubmitError
from airflow_pywren.executor.serialization import ResultRef


def add(x, y):
    return x + y


def total(numbers):
    return sum(numbers)


def scale(numbers, factor):
    return [n * factor for n in numbers]


def with_default(x, y=0):
    return x + y


def keyword_only(*, a, b=2):
    return a + b


def with_id(id, x):
    return id, x


def after_id(x, id):
    return x, id


def varargs(*items):
    return len(items)


def nothing():
    return "nothing"


def bound(func, item, extra_args=None):
    data = calls.bind_call(func, item, extra_args)
    return data.args, data.kwargs


@pytest.mark.parametrize(
    ("func", "item", "expected"),
    [
        (add, [3, 6], ((3, 6), {})),  # a list is spread
        (add, (3, 6), ((3, 6), {})),  # so is a tuple
        (add, {"x": 2, "y": 8}, ((), {"x": 2, "y": 8})),  # a dict of parameter names: keywords
        (total, [[1, 2, 3]], (([1, 2, 3],), {})),  # a wrapped list is the one argument
        (total, [1, 2, 3], (([1, 2, 3],), {})),  # cannot spread, one parameter: passed whole
        (total, 7, ((7,), {})),  # anything else: the single argument
        (total, {"a": 1}, (({"a": 1},), {})),  # a dict with other keys: the single argument
        (scale, [[1, 2], 3], (([1, 2], 3), {})),  # a list among other parameters
        (keyword_only, {"a": 1}, ((), {"a": 1})),
        (varargs, [1, 2, 3], ((1, 2, 3), {})),
        (varargs, {"items": 1}, (({"items": 1},), {})),
        (nothing, [], ((), {})),  # an empty list: no arguments
        (len, [1, 2], (([1, 2],), {})),  # builtins with a signature follow the same rule
        (len, {"a": 1}, (({"a": 1},), {})),
    ],
)
def test_argument_rule(func, item, expected):
    assert bound(func, item) == expected


def test_spreading_is_preferred_when_it_binds():
    # a one-item list spreads into the one parameter: wrap it to pass the list itself
    assert bound(total, [5]) == ((5,), {})
    assert bound(total, [[5]]) == (([5],), {})


@pytest.mark.parametrize(
    ("func", "item", "words"),
    [
        (add, [1, 2, 3], ["add(x, y)", "spread into 3", "[[1, 2, 3]]"]),
        (with_default, [1, 2, 3], ["with_default(x, y=0)", "spread"]),  # two parameters: no fallback
        (add, 5, ["add(x, y)", "single positional argument"]),
        (keyword_only, 3, ["keyword_only(*, a, b=2)"]),
        (nothing, 1, ["nothing()"]),
    ],
)
def test_items_that_cannot_bind_fail_at_submit_naming_the_item_and_the_rule(func, item, words):
    with pytest.raises(PyWrenSubmitError) as raised:
        calls.bind_call(func, item, where="iterdata item 4")
    message = str(raised.value)
    assert "iterdata item 4" in message and calls.RULE in message
    for word in words:
        assert word in message


def test_extra_args_are_appended_to_every_call():
    assert bound(add, 0, extra_args=(10,)) == ((0, 10), {})
    assert bound(add, [1], extra_args=[10]) == ((1, 10), {})
    assert bound(scale, [1, 2], extra_args=(3,)) == (([1, 2], 3), {})  # whole item plus the extra argument
    assert bound(add, {"x": 1}, extra_args={"y": 2}) == ((), {"x": 1, "y": 2})
    assert bound(add, 1, extra_args={"y": 2}) == ((1,), {"y": 2})
    with pytest.raises(PyWrenSubmitError, match="extra_args must be a tuple or list"):
        calls.bind_call(add, 1, extra_args="y")


def test_injected_parameters_are_not_data_parameters():
    assert calls.parameters_of(with_id).injected == ("id",)
    assert bound(with_id, 5) == ((5,), {})
    assert bound(with_id, {"x": 5}) == ((), {"x": 5})
    with pytest.raises(PyWrenSubmitError, match="'id' is an injected parameter"):
        calls.bind_call(with_id, {"id": 1, "x": 5})
    with pytest.raises(PyWrenSubmitError, match="injected"):
        calls.bind_call(with_id, 1, extra_args={"id": 3})
    assert bound(with_id, [1, 2]) == (([1, 2],), {})  # one data parameter left (x): passed whole
    with pytest.raises(PyWrenSubmitError, match=r"with_id\(id, x\)"):
        calls.bind_call(with_id, 1, extra_args=(2,))


def test_injected_values_go_where_the_function_declares_them():
    params = calls.parameters_of(with_id)
    assert calls.place_injected(params, (5,), {}, {"id": 0}) == ((0, 5), {})
    params = calls.parameters_of(after_id)
    assert calls.place_injected(params, (5,), {}, {"id": 0}) == ((5,), {"id": 0})
    assert calls.place_injected(params, (), {"x": 5}, {"id": 0}) == ((), {"x": 5, "id": 0})


def test_result_refs_are_bound_on_the_function_side():
    data = calls.bind_call(add, ResultRef("some/key"), extra_args=(1,))
    assert data.has_unbound and data.unbound == ResultRef("some/key") and data.extra_args == (1,)


def test_registering_an_injected_parameter():
    def uses_now(x, now):
        return x, now

    assert calls.parameters_of(uses_now).injected == ()
    calls.register_injected(calls.InjectedParameter("now", "a test value", provide=lambda context: 42))
    try:
        assert "now" in calls.injected_parameters()
        assert calls.parameters_of(uses_now).injected == ("now",)
        assert bound(uses_now, 1) == ((1,), {})
        with pytest.raises(ValueError, match="already registered"):
            calls.register_injected(calls.InjectedParameter("now", "another", provide=lambda context: 0))
    finally:
        calls.unregister_injected("now")
    assert calls.parameters_of(uses_now).injected == ()


def test_builtin_injected_parameters():
    assert {"id", "storage", "internal_storage", "ibm_cos", "rabbitmq"} <= set(calls.injected_parameters())


def test_reducer_must_take_the_list_of_results():
    calls.check_reducer(total)
    calls.check_reducer(lambda results, id: results)
    with pytest.raises(PyWrenSubmitError, match="reducer"):
        calls.check_reducer(add)
