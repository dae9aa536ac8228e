"""models.memo: the one bounded memo every speed-up's cache uses."""

import pytest

from models.memo import Memo, clear_all, memos


def test_computes_once_per_key_and_remembers_none():
    memo, calls = Memo("test.once", 4), []
    for _ in range(3):
        assert memo.get("a", lambda: calls.append("a") or None) is None
    assert calls == ["a"] and "a" in memo and memo["a"] is None


def test_clears_when_full_and_never_holds_more_than_its_size():
    memo = Memo("test.bounded", 3)
    for key in range(10):
        assert memo.get(key, lambda: key * 2) == key * 2
        assert len(memo) <= 3
    assert memo.get(9, lambda: "not called") == 18


def test_an_unhashable_key_or_a_failing_compute_leaves_it_as_it_was():
    memo = Memo("test.errors", 3)
    with pytest.raises(TypeError):
        memo.get(["a list"], lambda: pytest.fail("compute must not run"))
    with pytest.raises(ZeroDivisionError):
        memo.get("x", lambda: 1 / 0)
    assert len(memo) == 0


def test_every_cache_of_the_speed_ups_is_listed_and_can_be_emptied():
    import calendars.ics  # noqa: F401  (importing them creates their memos)
    import flows.state  # noqa: F401
    import notifications.compose  # noqa: F401
    import notifications.outbox  # noqa: F401
    import notifications.render  # noqa: F401
    import roundtable.web.render  # noqa: F401

    names = {memo.name for memo in memos()}
    assert {"flows.state.definitions", "flows.state.timelines", "notifications.compose.parsed_headers",
            "notifications.compose.folded_headers", "notifications.render_by_shape.shapes",
            "calendars.ics_per_recipient.templates", "notifications.outbox.compiled",
            "roundtable.web.render.whens"} <= names
    Memo("test.cleared", 2).get(1, lambda: 1)
    clear_all()
    assert all(len(memo) == 0 for memo in memos())
