from tests.support.http import bearer
from tests.support.payloads import PATHS, body_for


async def test_accepts_a_call(client, org_id, conn):
    response = await client.post(PATHS["calls"], content=body_for("calls", org_id), headers=bearer())
    assert response.status_code == 202, response.text
    assert await conn.fetchval("SELECT count(*) FROM event_log") == 1
