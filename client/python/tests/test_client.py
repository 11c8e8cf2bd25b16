"""The binding against a real simcached: one test per behaviour."""
import gc
import hashlib
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import DIM, FINGERPRINT, MODEL, PYDIR, at_cosine, kv_blob, unit
import simcache


def test_put_lookup_round_trip_bytes_equal(client):
    kv = kv_blob(1)
    eid = client.put(unit(1), kv, meta=b"tokens=8")
    m = client.lookup(unit(1))
    assert m is not None
    with m:
        assert m.id == eid
        assert m.similarity == pytest.approx(1.0, abs=1e-5)
        assert m.layout == simcache.Layout("float16", 2, 1, 4, 16, 8)
        assert m.size == kv.nbytes
        assert m.meta == b"tokens=8"
        view = m.numpy()
        assert view.shape == kv.shape and view.dtype == np.float16
        assert view.tobytes() == kv.tobytes()


def test_lookup_miss_is_none(client):
    assert client.lookup(unit(2)) is None
    client.put(unit(3), kv_blob(3))
    assert client.lookup(unit(2)) is None


def test_zero_copy_view_is_read_only(client):
    client.put(unit(1), kv_blob(1))
    with client.lookup(unit(1)) as m:
        view = m.numpy()
        assert not view.flags.writeable
        assert view.ctypes.data == m._c.data            # a view of the mapping, not a copy
        with pytest.raises(ValueError):
            view[0, 0, 0, 0, 0] = 1
        with pytest.raises(ValueError):
            view.flags.writeable = True
        raw = m.numpy(np.uint8, (m.size,))
        assert raw.ctypes.data == m._c.data and not raw.flags.writeable


def test_similar_embedding_hits_unrelated_misses(client):
    base = unit(10)
    eid = client.put(base, kv_blob(10))
    with client.lookup(at_cosine(base, 0.9, 1)) as m:
        assert m.id == eid and m.similarity == pytest.approx(0.9, abs=1e-3)
    assert client.lookup(at_cosine(base, 0.7, 2)) is None      # default threshold 0.8
    assert client.lookup(unit(11)) is None                      # unrelated


def test_threshold_override(client):
    base = unit(20)
    eid = client.put(base, kv_blob(20))
    near = at_cosine(base, 0.9, 3)
    assert client.lookup(near, threshold=0.95) is None
    far = at_cosine(base, 0.6, 4)
    with client.lookup(far, threshold=0.5) as m:
        assert m.id == eid


def test_lookup_batch(client):
    ids = [client.put(unit(30 + i), kv_blob(30 + i)) for i in range(3)]
    queries = np.stack([at_cosine(unit(30), 0.95, 5), unit(99), at_cosine(unit(32), 0.9, 6)])
    res = client.lookup_batch(queries)
    assert [r.id if r else None for r in res] == [ids[0], None, ids[2]]
    assert res[0].numpy().tobytes() == kv_blob(30).tobytes()
    for r in res:
        if r:
            r.release()
    assert client.lookup_batch([unit(30)], threshold=0.99)[0].id == ids[0]
    assert client.lookup_batch(np.zeros((0, DIM), np.float32)) == []


def test_get_release_and_context_manager(client):
    eid = client.put(unit(40), kv_blob(40))
    m = client.get(eid)
    assert m.id == eid and m.similarity == pytest.approx(1.0)
    assert client.stats().leases_active == 1
    client.release(m)
    assert client.stats().leases_active == 0
    with client.get(eid) as m2:
        assert m2.numpy().tobytes() == kv_blob(40).tobytes()
        assert client.stats().leases_active == 1
    assert m2.released and client.stats().leases_active == 0


def test_double_release_is_elease(client):
    eid = client.put(unit(41), kv_blob(41))
    m = client.get(eid)
    m.release()
    with pytest.raises(simcache.SimcacheError) as e:
        m.release()
    assert e.value.code == simcache.ELEASE == -10
    with pytest.raises(simcache.SimcacheError) as e:
        m.numpy()                                   # no view after release
    assert e.value.code == simcache.ELEASE


def test_wrong_dim_is_edim(client):
    for call in (lambda: client.lookup(np.ones(DIM + 1, np.float32)),
                 lambda: client.put(np.ones(DIM - 1, np.float32), kv_blob(1)),
                 lambda: client.lookup_batch(np.ones((2, DIM + 3), np.float32))):
        with pytest.raises(simcache.SimcacheError) as e:
            call()
        assert e.value.code == simcache.EDIM == -6
        assert str(DIM) in str(e.value)


def test_nan_or_zero_embedding_is_eembed(client):
    bad = unit(50)
    bad[3] = np.nan
    for emb in (bad, np.zeros(DIM, np.float32)):
        with pytest.raises(simcache.SimcacheError) as e:
            client.put(emb, kv_blob(50))
        assert e.value.code == simcache.EEMBED == -7
        with pytest.raises(simcache.SimcacheError) as e:
            client.lookup(emb)
        assert e.value.code == simcache.EEMBED
    assert client.stats().ns_entries == 0           # the refused put left nothing behind
    client.put(unit(50), kv_blob(50))               # and the handle still works


def test_bytes_put_needs_a_layout(client):
    kv = kv_blob(5)
    eid = client.put(unit(5), kv.tobytes(), layout=simcache.Layout.from_tensor(kv))
    with client.get(eid) as m:
        assert m.numpy().tobytes() == kv.tobytes()
    with pytest.raises(simcache.SimcacheError) as e:
        client.put(unit(6), kv.tobytes())
    assert e.value.code == simcache.EINVAL


def test_layout_mismatch_is_elayout(client):
    with pytest.raises(simcache.SimcacheError) as e:
        client.put(unit(1), kv_blob(1), layout=simcache.Layout("float16", 2, 1, 4, 16, 9))
    assert e.value.code == simcache.ELAYOUT


def test_delete(client):
    eid = client.put(unit(60), kv_blob(60))
    client.delete(eid)
    assert client.lookup(unit(60)) is None
    with pytest.raises(simcache.SimcacheError) as e:
        client.get(eid)
    assert e.value.code == simcache.ENOTFOUND


def test_delete_while_leased_keeps_the_bytes(client):
    eid = client.put(unit(61), kv_blob(61))
    with client.lookup(unit(61)) as m:
        assert m.id == eid
        client.delete(m)
        assert client.lookup(unit(61)) is None
        assert m.numpy().tobytes() == kv_blob(61).tobytes()


def test_stats(client):
    s0 = client.stats()
    client.put(unit(70), kv_blob(70))
    client.put(unit(71), kv_blob(71))
    with client.lookup(unit(70)):
        pass
    assert client.lookup(unit(72)) is None
    s = client.stats()
    assert s.ns_entries == 2
    assert s.puts - s0.puts == 2
    assert s.hits - s0.hits == 1 and s.misses - s0.misses == 1
    assert s.host_bytes_used >= 2 * kv_blob(70).nbytes
    assert s.host_bytes_capacity == 64 << 20


def test_ping(client):
    client.ping()


def test_route_without_peers_answers_local(client):
    if not hasattr(simcache.library(), "simcache_route"):
        with pytest.raises(NotImplementedError):
            client.route(unit(1))
        pytest.skip("this libsimcache-client has no simcache_route()")
    node = client.route(unit(1))
    assert node.local and node.flags & simcache.ROUTE_LOCAL
    client.put(unit(1), kv_blob(1))
    assert client.route(at_cosine(unit(1), 0.9, 1)).local
    with pytest.raises(simcache.SimcacheError) as e:
        client.route(np.ones(DIM + 1, np.float32))
    assert e.value.code == simcache.EDIM
    bad = unit(2)
    bad[0] = np.nan
    with pytest.raises(simcache.SimcacheError) as e:
        client.route(bad)
    assert e.value.code == simcache.EEMBED


def test_namespaces_and_tenants_are_isolated(daemon, client):
    client.put(unit(80), kv_blob(80))
    with simcache.Client(daemon.socket, MODEL, FINGERPRINT + "/other", DIM) as other:
        assert other.lookup(unit(80)) is None
    with simcache.Client(daemon.socket, MODEL, FINGERPRINT, DIM, tenant="team-b") as t:
        assert t.lookup(unit(80)) is None
    with simcache.Client(daemon.socket, MODEL, FINGERPRINT, DIM) as same:
        assert same.lookup(unit(80)) is not None


def test_begin_put_writes_in_place(client):
    lay = simcache.Layout("float16", 2, 1, 4, 16, 8)
    with client.begin_put(lay) as buf:
        buf.numpy()[...] = kv_blob(90)
        eid = buf.commit(unit(90), meta=b"m")
    with client.get(eid) as m:
        assert m.numpy().tobytes() == kv_blob(90).tobytes() and m.meta == b"m"
    with client.begin_put(lay):
        pass                                        # aborted on exit
    assert client.stats().ns_entries == 1


def test_non_contiguous_array_put(client):
    kv = np.ascontiguousarray(kv_blob(91).transpose(0, 1, 2, 4, 3)).transpose(0, 1, 2, 4, 3)
    assert not kv.flags.c_contiguous
    eid = client.put(unit(91), kv)
    with client.get(eid) as m:
        assert np.array_equal(m.numpy(), kv)


def test_unreleased_match_is_released_after_gc(client):
    eid = client.put(unit(95), kv_blob(95))
    m = client.get(eid)
    assert client.stats().leases_active == 1
    del m
    gc.collect()
    client.ping()                                   # the next call hands the lease back
    assert client.stats().leases_active == 0


def test_view_keeps_its_match_alive(client):
    eid = client.put(unit(96), kv_blob(96))
    view = client.get(eid).numpy()                 # the Match itself is not kept by the caller
    gc.collect()
    client.ping()
    assert client.stats().leases_active == 1        # the view holds the lease
    assert view.tobytes() == kv_blob(96).tobytes()
    del view
    gc.collect()
    client.ping()
    assert client.stats().leases_active == 0


def test_connect_without_daemon_raises():
    with pytest.raises(simcache.SimcacheError) as e:
        simcache.Client("/nonexistent/simcached.sock", MODEL, FINGERPRINT, DIM)
    assert e.value.code < 0 and e.value.detail


def test_closed_client_raises_eclosed(daemon):
    c = simcache.Client(daemon.socket, MODEL, FINGERPRINT, DIM)
    c.close()
    with pytest.raises(simcache.SimcacheError) as e:
        c.ping()
    assert e.value.code == simcache.ECLOSED


def test_threads_share_one_client(client):
    ids = [client.put(unit(100 + i), kv_blob(100 + i)) for i in range(4)]
    bad = unit(1)
    bad[0] = np.inf
    errors = []

    def good(i):
        for _ in range(50):
            with client.lookup(at_cosine(unit(100 + i), 0.95, i)) as m:
                if m.id != ids[i] or m.numpy().tobytes() != kv_blob(100 + i).tobytes():
                    errors.append(f"thread {i}: wrong match")

    def failing():
        for _ in range(50):
            try:
                client.lookup(bad)
                errors.append("inf embedding accepted")
            except simcache.SimcacheError as e:
                if e.code != simcache.EEMBED:
                    errors.append(f"wrong code {e.code}: {e}")

    ts = [threading.Thread(target=good, args=(i,)) for i in range(4)]
    ts.append(threading.Thread(target=failing))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


CHILD = r"""
import hashlib, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import simcache
from conftest import at_cosine, kv_blob, unit, DIM, MODEL, FINGERPRINT
with simcache.Client(sys.argv[2], MODEL, FINGERPRINT, DIM) as c:
    with c.lookup(at_cosine(unit(200), 0.92, 7)) as m:
        print(m.id, hashlib.sha256(m.numpy()).hexdigest())
    print(c.put(unit(201), kv_blob(201, tokens=32), meta=b"from-child"))
"""


def test_two_processes_share_entries(client, daemon):
    eid = client.put(unit(200), kv_blob(200))
    tests_dir = str(__import__("pathlib").Path(__file__).parent)
    r = subprocess.run([sys.executable, "-c", CHILD, tests_dir, daemon.socket],
                       capture_output=True, text=True, timeout=60,
                       env={**__import__("os").environ, "PYTHONPATH": str(PYDIR)})
    assert r.returncode == 0, r.stderr
    line1, line2 = r.stdout.split("\n")[:2]
    got_id, digest = line1.split()
    assert int(got_id) == eid
    assert digest == hashlib.sha256(kv_blob(200)).hexdigest()
    with client.lookup(at_cosine(unit(201), 0.85, 8)) as m:
        assert m.id == int(line2) and m.meta == b"from-child"
        assert m.numpy().tobytes() == kv_blob(201, tokens=32).tobytes()
