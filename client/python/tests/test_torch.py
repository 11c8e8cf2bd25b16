"""Torch tensors in and out (skipped where torch is not installed)."""
import warnings

import pytest

from conftest import unit
import simcache

torch = pytest.importorskip("torch")


def condensed_kv(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 1, 4, 8, 16, generator=g).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_torch_round_trip_is_a_zero_copy_view(client, dtype):
    kv = condensed_kv(1, dtype)
    eid = client.put(unit(1), kv)
    with client.get(eid) as m:
        assert m.layout == simcache.Layout.from_tensor(kv)
        with warnings.catch_warnings():
            warnings.simplefilter("error")          # the read-only buffer warning is handled
            t = m.torch()
        assert t.dtype == dtype and t.shape == kv.shape
        assert torch.equal(t, kv)
        assert t.data_ptr() == m._c.data            # zero copy
        copy = t.clone()                            # the documented way to get a writable tensor
        copy += 1
    assert torch.equal(copy, kv + 1)


def test_torch_non_contiguous_and_4d_put(client):
    base = condensed_kv(2, torch.float32)[:, 0]     # (2, kv_heads, tokens, head_dim)
    kv = base.transpose(2, 3).contiguous().transpose(2, 3)
    assert not kv.is_contiguous()
    eid = client.put(unit(2), kv)
    with client.get(eid) as m:
        assert m.layout.layers == 1
        assert torch.equal(m.torch().view(kv.shape), kv)


def test_begin_put_torch_view(client):
    lay = simcache.Layout(torch.float16, 2, 1, 4, 16, 8)
    with client.begin_put(lay) as buf:
        buf.torch().copy_(condensed_kv(3, torch.float16))
        eid = buf.commit(torch.from_numpy(unit(3)))     # a torch embedding works too
    with client.lookup(unit(3)) as m:
        assert m.id == eid and torch.equal(m.torch(), condensed_kv(3, torch.float16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensor_put_and_device_copy(client):
    kv = condensed_kv(4, torch.float16).cuda()
    eid = client.put(unit(4), kv)
    with client.get(eid) as m:
        t = m.torch(device="cuda")
    assert t.is_cuda and torch.equal(t, kv)         # the copy outlives the lease


def test_gpu_device_without_a_gpu_says_why(daemon):
    """A client asked for GPU 0 where there is none still serves the host
    tier; gpu_status says why, and torch(device="cuda") is not attempted
    through simcache. With a GPU, the device copy must be byte-exact."""
    c = simcache.Client(daemon.socket, "model-a", "fp-1", 64, gpu_device=0)
    try:
        level, why = c.gpu_status()
        kv = condensed_kv(5, torch.float16)
        eid = c.put(unit(5), kv)
        if level == 0:
            assert "device 0 unavailable" in why
            assert not torch.cuda.is_available() or torch.cuda.device_count() == 0
        else:
            assert level in (1, 2) and why == ""
            with c.get(eid) as m:
                t = m.torch(device="cuda:0")
                assert t.device.type == "cuda"
                assert torch.equal(t.cpu(), kv)
        with c.get(eid) as m:
            assert torch.equal(m.torch(), kv)
    finally:
        c.close()


def test_prefer_device_placement(daemon):
    """prefer_device=True asks for hits in the daemon's GPU tier. Without a
    GPU tier (no device here) gpu_tier() says why and hits stay host
    views; with one, a hit is a GPU-tier match whose torch() copies are
    byte-exact on the device and on the host."""
    c = simcache.Client(daemon.socket, "model-a", "fp-1", 64, gpu_device=0, prefer_device=True)
    try:
        mapped, why = c.gpu_tier()
        kv = condensed_kv(6, torch.float16)
        eid = c.put(unit(6), kv)
        with c.get(eid) as m:
            if not mapped:
                assert why != ""
                assert m.tier == simcache.TIER_HOST
                assert torch.equal(m.torch(), kv)
            else:
                assert why == ""
                assert torch.equal(m.torch(device="cuda:0").cpu(), kv)
                assert torch.equal(m.torch(), kv)
    finally:
        c.close()
