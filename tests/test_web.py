

def test_a_suggestion_and_a_decision_on_both_databases(engine):
    """SQLite runs pages on the event loop, PostgreSQL in the thread pool: both record the same."""
    world = make_world(engine)
    with TestClient(world.app()) as client:
        assert post(client, world.link("m2@example.org", "call_for_suggestions", "respond"),
                    op="save", title="ສໍາມະນາ").status_code == 303
        world.open_step("approval", due=local(2020, 3, 1, 17, 0))
        world.now[0] = local(2020, 2, 20, 10, 0)
        link = world.link("chair@example.org", "approval", "approve", revision=1)
        assert post(client, link, decision="approve").status_code == 303
        assert 'data-decision="approve"' in client.get(link).text
    assert world.counts() == (2, 1, 1)
