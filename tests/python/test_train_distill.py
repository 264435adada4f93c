"""--teacher: knowledge distillation from a train.py checkpoint. The teacher is the network
the teacher's run exported (its accuracy matches its card), the distillation term is
Hinton et al.'s, it changes the run, and a distilled run still resumes bit for bit."""
import pytest
import torch
import torch.nn.functional as F

from veil_tools import data as D
from veil_tools import train as T

from test_train_resume import MNIST, _assert_same_run, _cached_data, _load, _need, _run  # noqa: F401


def test_kd_loss_is_hintons_term():
    torch.manual_seed(3)
    s, t = torch.randn(6, 10), torch.randn(6, 10)
    # zero exactly when the student matches the teacher
    assert float(T.kd_loss(t, t, 4.0)) == pytest.approx(0.0, abs=1e-6)
    # T^2 * (cross-entropy against the soft targets - their entropy), by hand
    for temp in (1.0, 4.0):
        q = F.softmax(t / temp, 1)
        ce = -(q * F.log_softmax(s / temp, 1)).sum(1).mean()
        ent = -(q * q.log()).sum(1).mean()
        assert float(T.kd_loss(s, t, temp)) == pytest.approx(float((ce - ent) * temp * temp),
                                                             rel=1e-5)


def test_kd_loss_of_an_ensemble_distils_its_mean_softmax():
    torch.manual_seed(4)
    s, t1, t2 = torch.randn(5, 10), torch.randn(5, 10), torch.randn(5, 10)
    # one teacher in a list is that teacher
    assert float(T.kd_loss(s, [t1], 4.0)) == pytest.approx(float(T.kd_loss(s, t1, 4.0)), rel=1e-6)
    # two: the targets are the mean of the tempered softmaxes, not the softmax of the mean
    for temp in (1.0, 4.0):
        q = (F.softmax(t1 / temp, 1) + F.softmax(t2 / temp, 1)) / 2
        ce = -(q * F.log_softmax(s / temp, 1)).sum(1).mean()
        ent = -(q * q.log()).sum(1).mean()
        assert float(T.kd_loss(s, [t1, t2], temp)) == pytest.approx(
            float((ce - ent) * temp * temp), rel=1e-5)
    # zero only where the student's tempered softmax is that mean
    assert float(T.kd_loss(s, [t1, t2], 4.0)) > 1e-3
    assert float(T.kd_loss(t1, [t1, t1], 4.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    _need("mnist")
    tmp = tmp_path_factory.mktemp("teacher")
    card, ck = _run(MNIST + ["--ema", "0.9"], tmp, "teacher")
    return card, ck, tmp


def test_teacher_is_the_exported_network(teacher_run):
    card, ck, _ = teacher_run
    train, test = D.load("mnist")
    train = train.subset(640)
    teacher, tcfg, has_ema = T.load_teacher(str(ck), "mnist", "cpu")
    assert has_ema and tcfg["dataset"] == "mnist"
    plain = D.Batches(train, "mnist", 500)
    recal = D.Batches(train, "mnist", 500, shuffle=True, augment=tcfg["augment"], seed=2)
    teacher = T.better_bn(teacher, recal, plain)
    ev = T.evaluate(teacher, D.Batches(test, "mnist", 500), "cpu")
    assert ev["accuracy"] == card["test_accuracy"]


def test_distillation_changes_the_run_and_resumes(teacher_run, tmp_path):
    _, ck_t, tmp_t = teacher_run
    kd = MNIST + ["--teacher", str(ck_t), "--kd-weight", "0.7", "--kd-temperature", "3"]
    card, ck_a = _run(kd, tmp_path, "a")
    assert card["hyperparameters"]["teacher"] == str(ck_t)
    assert card["hyperparameters"]["kd_weight"] == 0.7
    # the same run without a teacher ends elsewhere (the term reaches the gradient)
    _, ck_plain = _run(MNIST, tmp_path, "plain")
    assert not torch.equal(_load(ck_a)["model"]["fc2.weight"], _load(ck_plain)["model"]["fc2.weight"])
    # interrupted mid-epoch and resumed: bit for bit the uninterrupted run
    res, ck_b = _run(kd, tmp_path, "b", ["--stop-after-steps", "7"])
    assert res == {"stopped_at_step": 7}
    _run(kd, tmp_path, "b", ["--resume"])
    _assert_same_run(ck_a, ck_b)


def test_an_ensemble_of_teachers(teacher_run, tmp_path):
    """--teacher A B: both are loaded, the card records both and the ensemble's accuracy,
    and the run differs from distilling A alone."""
    card_t, ck_t, _ = teacher_run
    _, ck_t2 = _run(MNIST + ["--ema", "0.9", "--seed", "5"], tmp_path, "teacher2")
    base = MNIST + ["--kd-weight", "0.7", "--kd-temperature", "3"]
    card, ck_e = _run(base + ["--teacher", str(ck_t), str(ck_t2)], tmp_path, "ens")
    hp = card["hyperparameters"]
    assert hp["teacher"] == [str(ck_t), str(ck_t2)]
    assert hp["teacher_test_accuracies"][0] == card_t["test_accuracy"]
    assert 0.0 < hp["teacher_test_accuracy"] <= 1.0
    _, ck_one = _run(base + ["--teacher", str(ck_t)], tmp_path, "one")
    assert not torch.equal(_load(ck_e)["model"]["fc2.weight"], _load(ck_one)["model"]["fc2.weight"])


def test_bad_teacher_is_refused(teacher_run, tmp_path):
    _, ck_t, _ = teacher_run
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(3)}, junk)
    for path, words in ((tmp_path / "none.pt", "does not exist"),
                        (junk, "not a train.py checkpoint")):
        with pytest.raises(SystemExit, match=words):
            T.main(MNIST + ["--teacher", str(path), "--out", str(tmp_path), "--no-progress",
                            "--threads", "1"])
    with pytest.raises(SystemExit, match="kd-weight"):
        T.main(MNIST + ["--teacher", str(ck_t), "--kd-weight", "1.5", "--out", str(tmp_path),
                        "--no-progress", "--threads", "1"])
    # a checkpoint of another data set
    ck = T._load_checkpoint(str(ck_t), "cpu")
    ck["args"]["model"] = "fashion-delphi"
    other = tmp_path / "other.pt"
    torch.save(ck, other)
    with pytest.raises(SystemExit, match="trained on fashion-mnist"):
        T.load_teacher(str(other), "mnist", "cpu")


def test_true_relu_teacher(tmp_path):
    """--act exact-relu trains a network veil cannot run (true ReLUs): its card says so,
    no ONNX is written, and its checkpoint serves as a --teacher for a polynomial student."""
    _need("mnist")
    card, ck = _run(MNIST + ["--act", "exact-relu", "--ema", "0.9"], tmp_path, "relu")
    assert card["teacher_only"] and card["hyperparameters"]["act"] == "exact-relu"
    assert card["test_accuracy"] > 0.5
    assert not list((tmp_path / "relu").glob("*.onnx"))
    teacher, tcfg, _ = T.load_teacher(str(ck), "mnist", "cpu")
    assert any(isinstance(m, torch.nn.ReLU) for m in teacher.modules())
    student, _ = _run(MNIST + ["--teacher", str(ck)], tmp_path, "student")
    assert student["hyperparameters"]["teacher"] == str(ck)
    assert (tmp_path / "student" / "mnist-cryptonets.onnx").exists()
