"""Tap sets (``atbsn_kernels.taps``): masks, active taps and the conversions between them, by hand."""

import pytest
import torch

from atbsn_kernels import taps


def test_blind_spot_mask_by_hand():
    expected = torch.tensor(
        [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.bool
    )
    assert torch.equal(taps.blind_spot_mask(5, 3), expected)
    assert not taps.blind_spot_mask(3, 0).any()
    assert taps.blind_spot_mask(3, 3).all()
    assert taps.blind_spot_mask(3, 1).sum() == 1 and taps.blind_spot_mask(3, 1)[1, 1]


def test_active_taps_by_hand():
    assert taps.active_taps(taps.blind_spot_mask(3, 1)) == (0, 1, 2, 3, 5, 6, 7, 8)
    assert taps.active_taps(taps.blind_spot_mask(3, 3)) == ()


def test_blind_taps_equal_the_active_taps_of_the_blind_mask():
    for k in (1, 3, 5, 7, 9, 11):
        for b in [0] + list(range(1, k + 1, 2)):
            assert taps.blind_taps(k, b) == taps.active_taps(taps.blind_spot_mask(k, b))


def test_taps_to_mask_inverts_active_taps():
    mask = torch.rand(5, 5, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(taps.taps_to_mask(taps.active_taps(mask), 5), mask)


def test_shifted_taps_are_the_upper_centre_3x3_of_a_5x5():
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[0:3, 1:4] = False
    assert taps.SHIFTED_TAPS == taps.active_taps(mask)


def test_resolve_taps_from_blind_or_mask():
    assert taps.resolve_taps(3, 1, None) == (0, 1, 2, 3, 5, 6, 7, 8)
    assert taps.resolve_taps(3, 1, [[True, False, False], [False] * 3, [False] * 3]) == tuple(range(1, 9))
    with pytest.raises(ValueError, match="either blind or mask"):
        taps.resolve_taps(3, 3, torch.zeros(3, 3, dtype=torch.bool))


def test_mask_from_multiplier():
    keep = torch.ones(4, 2, 3, 3)
    keep[:, :, 1, 1] = 0
    assert torch.equal(taps.mask_from_multiplier(keep), taps.blind_spot_mask(3, 1))
    keep[0, 0, 0, 0] = 0
    assert taps.mask_from_multiplier(keep) is None, "a mask that differs between channels has no tap mask"
    assert taps.mask_from_multiplier(torch.ones(3)) is None


@pytest.mark.parametrize("k,step,offset,small", [(21, 2, 0, 11), (13, 3, 0, 5), (9, 4, 0, 3), (7, 1, 0, 7)])
def test_lattice_of_taps_every_step_from_the_centre(k, step, offset, small):
    c = k // 2
    mask = torch.ones(k, k, dtype=torch.bool)
    mask[c % step::step, c % step::step] = False
    mask[c, c] = True
    grid = taps.lattice(taps.active_taps(mask), k)
    assert (grid.step, grid.offset, grid.kernel_size) == (step, offset, small)
    small_mask = taps.taps_to_mask(grid.taps, small)
    assert torch.equal(small_mask, mask[offset::step, offset::step][:small, :small])


def test_lattice_with_an_odd_remainder_keeps_the_centre_aligned():
    k, c = 11, 5
    mask = torch.ones(k, k, dtype=torch.bool)
    for d in (-4, 0, 4):  # offsets from the centre at step 4: rows/columns 1, 5, 9
        mask[c + d, c] = mask[c, c + d] = False
    grid = taps.lattice(taps.active_taps(mask), k)
    assert (grid.step, grid.offset, grid.kernel_size) == (4, 1, 3)
    assert taps.taps_to_mask(grid.taps, 3).int().tolist() == [[1, 0, 1], [0, 0, 0], [1, 0, 1]]


def test_no_active_taps_is_the_kernel_itself():
    assert taps.lattice((), 5) == taps.Lattice(1, 0, 5, ())
