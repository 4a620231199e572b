"""The load shedder's admission rule (app/api/shedding.py), on its own."""

from __future__ import annotations

from app.api.shedding import MERGED, Backlog


def test_a_search_with_none_ahead_is_served_even_after_a_slow_spell() -> None:
    backlog = Backlog()
    assert backlog.admit(bound=1.0) is None
    backlog.leave(seconds=30.0)  # one search took far longer than the bound (a reindex ran)
    for _ in range(3):  # alone in the worker: served, and the mean follows the new times
        assert backlog.admit(bound=1.0) is None
        backlog.leave(seconds=0.1)
    assert backlog.seconds < 30.0 * 0.8**2


def test_a_search_behind_more_than_the_bound_is_refused_with_its_expected_wait() -> None:
    backlog = Backlog()
    assert backlog.admit(bound=1.0) is None
    backlog.leave(seconds=0.5)
    admitted = 0
    while backlog.admit(bound=1.0) is None:  # a batch of MERGED searches takes 0.5 s
        admitted += 1
    assert admitted == 2 * MERGED  # two batches end within 1.0 s; a third would not
    assert backlog.inside == admitted


def test_the_html_search_is_shed_like_the_api_with_retry_after(make_app, photos) -> None:  # type: ignore[no-untyped-def]
    import io

    from app.api.shedding import backlog

    app = make_app(SHED_AFTER_SECONDS=1.0)
    shared = backlog()
    shared.inside, shared.seconds = shared.inside + 1, 100.0  # one slow search is running
    try:
        for path, data in (("/search", {"image": (io.BytesIO(photos["coffee"]), "q.jpg")}),
                           ("/api/search", {"image": (io.BytesIO(photos["coffee"]), "q.jpg")})):
            reply = app.test_client().post(path, data=data, content_type="multipart/form-data")
            assert reply.status_code == 503, path
            assert int(reply.headers["Retry-After"]) >= 99
    finally:
        shared.inside, shared.seconds = shared.inside - 1, 0.0
