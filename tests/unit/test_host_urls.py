"""Splitting a multi-host DATABASE_URL into one URL per host, and the session attributes asked for."""

from __future__ import annotations

import pytest

from service.database.primary import host_urls, target_session_attrs


def test_each_host_keeps_the_credentials_database_and_options():
    url = "postgresql://ingest:p%40ss,word@db1:5432,db2,[::1]:5433/mightycall?target_session_attrs=read-write"
    assert host_urls(url) == [
        "postgresql://ingest:p%40ss,word@db1:5432/mightycall?target_session_attrs=read-write",
        "postgresql://ingest:p%40ss,word@db2/mightycall?target_session_attrs=read-write",
        "postgresql://ingest:p%40ss,word@[::1]:5433/mightycall?target_session_attrs=read-write",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ingest@db1:5432/mightycall",
        "postgresql://postgres@/mightycall?host=/tmp/sockets&port=5432",
    ],
)
def test_a_url_with_one_host_is_left_as_it_is(url):
    assert host_urls(url) == [url]


def test_read_write_is_asked_of_several_hosts_unless_the_url_or_the_environment_chooses(monkeypatch):
    monkeypatch.delenv("PGTARGETSESSIONATTRS", raising=False)
    assert target_session_attrs("postgresql://db1,db2/x") == "read-write"
    assert target_session_attrs("postgresql:///x?host=/run/a,/run/b") == "read-write"
    # One host is what it is: a read-only one still answers the commands that only read.
    assert target_session_attrs("postgresql://db1/x") is None
    assert target_session_attrs("postgresql://db1,db2/x?target_session_attrs=primary") is None
    monkeypatch.setenv("PGTARGETSESSIONATTRS", "any")
    assert target_session_attrs("postgresql://db1,db2/x") is None
