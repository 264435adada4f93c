"""Net2WiderNet widening (veil_tools/widen.py, train.py --init CK --widen): the wider
network computes the narrow one's function exactly without noise and nearly with it, the
copies part under noise, and a checkpoint of another family or a wider one is refused."""
import pytest
import torch

from veil_tools import nets as N
from veil_tools import train as T
from veil_tools import widen as W

from test_train_resume import MNIST, _cached_data, _need, _run  # noqa: F401


def _net(model: str, width: int, seed: int):
    torch.manual_seed(seed)
    act = N.make_act_factory("relu", 2, 4.0, True)
    net = N.PRESETS[model]["net"](act, width)
    # batch-norm statistics and activations away from their initial values, so that every
    # tensor the widening touches matters
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        for p in net.parameters():
            if p.dim() == 0 or p.numel() <= 4:
                p.add_(0.1 * torch.randn_like(p))
    return net.eval()


@pytest.mark.parametrize("model,narrow,wide", [("cifar10-resnet20", 4, 6), ("cifar10-resnet20", 4, 8),
                                               ("cifar10-shallow", 4, 7)])
def test_widening_without_noise_computes_the_same_function(model, narrow, wide):
    small = _net(model, narrow, 1)
    big = _net(model, wide, 2)
    x = torch.randn(3, 3, 32, 32)
    before = big(x)
    big.load_state_dict(W.widen_state(small.state_dict(), big.state_dict(), noise=0.0))
    with torch.no_grad():
        ref, got = small(x), big(x)
    assert not torch.allclose(before, ref, atol=1e-3)  # the wide network was another function
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    # and the network really is wider: the first convolution has the new channels
    first = next(m for m in big.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.out_channels == wide


def test_noise_lets_the_copies_part_and_stays_close():
    small, big = _net("cifar10-resnet20", 4, 1), _net("cifar10-resnet20", 8, 2)
    g = torch.Generator().manual_seed(5)
    state = W.widen_state(small.state_dict(), big.state_dict(), noise=0.02, generator=g)
    w_old, w_new = small.state_dict()["conv1.weight"], state["conv1.weight"]
    assert torch.equal(w_new[:4], w_old)           # the original channels are kept exactly
    assert not torch.equal(w_new[4:], w_old)       # their copies differ a little
    assert float((w_new[4:] - w_old).abs().max()) < 0.2 * float(w_old.abs().max())
    big.load_state_dict(state)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref, got = small(x), big(x)
    assert float((got - ref).abs().max()) < 0.1 * float(ref.abs().max())
    assert (got.argmax(1) == ref.argmax(1)).float().mean() >= 0.75


def test_other_families_and_narrowing_are_refused():
    res, shallow = _net("cifar10-resnet20", 4, 1), _net("cifar10-shallow", 4, 1)
    with pytest.raises(ValueError, match="not this network's family"):
        W.widen_state(shallow.state_dict(), res.state_dict())
    wide = _net("cifar10-resnet20", 8, 1)
    with pytest.raises(ValueError, match="only grows channels"):
        W.widen_state(wide.state_dict(), res.state_dict())


def test_train_widens_a_checkpoint_and_refuses_misuse(tmp_path):
    _need("mnist")
    narrow = MNIST[:-1] + ["1", "--width", "20"]
    _, ck = _run(narrow, tmp_path, "narrow")
    card, _ = _run(MNIST[:-1] + ["1", "--width", "30", "--init", str(ck), "--widen"], tmp_path, "wide")
    assert card["parameters"] > 0 and card["init_checkpoint"] == str(ck)
    with pytest.raises(SystemExit, match="--widen needs --init"):
        _run(MNIST[:-1] + ["1", "--widen"], tmp_path, "bad")
    with pytest.raises(SystemExit, match="only grows channels"):
        _run(MNIST[:-1] + ["1", "--width", "10", "--init", str(ck), "--widen"], tmp_path, "narrower")
