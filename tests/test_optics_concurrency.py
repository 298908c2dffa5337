"""The hand-written autograd passes of the PSF are safe to share: two lenses seen through one
geometry in one graph, two threads at once, and two DDP processes give the gradients of
the same work done alone (the work arrays are lent per call, never shared by two calls)."""

from __future__ import annotations

import copy
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from privcap.optics import FresnelPSF, Lens, OpticsConfig, random_coefficients_um

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_config() -> OpticsConfig:
    """The quick camera scaled down to a 64-sample lens (padded to 128): milliseconds."""
    q = OpticsConfig.quick()
    scale = 64 / 256
    base = q.replace(grid_size=64, num_terms=15, psf_size=32, image_size=32,
                     sensor_distance_m=q.sensor_distance_m * scale,
                     object_distance_m=q.object_distance_m * scale)
    return base.replace(z4_init_um=round(base.focus_z4_um()[1], 3))


def make_lens(config: OpticsConfig, seed: int) -> Lens:
    return Lens(config, init_coefficients_um=random_coefficients_um(config, 0.4, seed=seed))


def weights(config: OpticsConfig, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(100 + seed)
    return torch.rand(3, config.psf_size, config.psf_size, generator=gen)


def psf_and_grads(optics: FresnelPSF, lens: Lens, w: torch.Tensor):
    psf = optics(lens)
    grads = torch.autograd.grad((psf * w).sum(), list(lens.parameters()))
    return psf.detach(), grads


def assert_same(a, b) -> None:
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y), float((x - y).abs().max())


@pytest.fixture(scope="module")
def config() -> OpticsConfig:
    return small_config()


def test_two_lenses_through_one_geometry_in_one_graph(config):
    optics = FresnelPSF(config)
    lenses = [make_lens(config, 1), make_lens(config, 2)]
    ws = [weights(config, 1), weights(config, 2)]
    alone = [psf_and_grads(optics, lens, w)[1] for lens, w in zip(lenses, ws, strict=True)]
    # two forwards through the same geometry, then a single backward through both
    psfs = [optics(lens) for lens in lenses]
    window = [optics.window_intensity(lens, -3, 7) for lens in lenses]  # a third pass between
    loss = sum((p * w).sum() for p, w in zip(psfs, ws, strict=True)) + 0 * sum(
        v.sum() for v in window
    )
    params = [list(lens.parameters()) for lens in lenses]
    together = torch.autograd.grad(loss, params[0] + params[1])
    assert_same(together[: len(params[0])], alone[0])
    assert_same(together[len(params[0]) :], alone[1])
    assert all(float(g.abs().max()) > 0 for g in together)


def test_two_threads_at_once_match_the_sequential_results(config):
    optics = FresnelPSF(config)
    seeds = [3, 4, 5, 6]
    lenses = {s: make_lens(config, s) for s in seeds}
    sequential = {s: psf_and_grads(optics, lenses[s], weights(config, s)) for s in seeds}
    pool = optics.propagator.geometry.pool
    assert pool.allocated == 1  # one set of work arrays served every sequential pass
    start = threading.Barrier(2)

    def run(seed: int):
        if seed in seeds[:2]:
            start.wait()  # the first two jobs start together
        return seed, psf_and_grads(optics, lenses[seed], weights(config, seed))

    with ThreadPoolExecutor(max_workers=2) as executor:
        results = list(executor.map(run, seeds * 8))
    for seed, (psf, grads) in results:
        ref_psf, ref_grads = sequential[seed]
        assert torch.equal(psf, ref_psf)
        assert_same(grads, ref_grads)
    assert pool.allocated <= 2  # at most one set per concurrent call: memory stays bounded


def test_copies_and_pickles_start_with_their_own_pool(config):
    optics = FresnelPSF(config)
    lens = make_lens(config, 7)
    ref = optics(lens).detach()
    for clone in (copy.deepcopy(optics), pickle.loads(pickle.dumps(optics))):
        geometry = clone.propagator.geometry
        assert geometry is not optics.propagator.geometry
        assert torch.equal(clone(lens).detach(), ref)


def test_sensor_field_and_training_forward_agree(config):
    """The linear propagator (field in, field out) and the fused training pass are one
    physics: ``|P(t U)|^2`` equals the fine intensity of :class:`FresnelPSF`."""
    optics = FresnelPSF(config)
    lens = make_lens(config, 8)
    with torch.no_grad():
        field = optics.sensor_field(lens)
        fine = optics.fine_intensity(lens)
    assert torch.allclose(field.abs().square(), fine, rtol=1e-4, atol=1e-6 * float(fine.max()))


# --------------------------------------------------------------------------- DDP


class PSFModel(nn.Module):
    """A lens and its PSF optics: what a DDP-wrapped camera differentiates."""

    def __init__(self, config: OpticsConfig) -> None:
        super().__init__()
        self.lens = make_lens(config, 9)
        self.optics = FresnelPSF(config)

    def forward(self) -> torch.Tensor:
        return self.optics(self.lens)


def one_step(model: PSFModel, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    grads.update({f"after_step.{n}": p.detach().clone() for n, p in model.named_parameters()})
    return grads


def ddp_worker(rank: int, world: int, init_file: str, config: OpticsConfig, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        model = PSFModel(config)
        ddp = nn.parallel.DistributedDataParallel(model)
        loss = (ddp() * weights(config, rank)).sum()
        torch.save(one_step(model, loss), Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_match_one_process(config, tmp_path):
    world = 2
    mp.spawn(ddp_worker, args=(world, str(tmp_path / "init"), config, str(tmp_path)),
             nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    # one process: DDP averages the ranks' gradients, i.e. the gradient of the mean loss
    model = PSFModel(config)
    psf = model()
    loss = sum((psf * weights(config, r)).sum() for r in range(world)) / world
    expected = one_step(model, loss)
    assert set(ranks[0]) == set(expected) and len(expected) == 4
    for name, value in expected.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # identical on both ranks
        assert torch.allclose(ranks[0][name], value, rtol=1e-5, atol=1e-7), name
