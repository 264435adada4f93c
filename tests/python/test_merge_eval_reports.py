"""python/merge_eval_reports.py: parts of a split `veil eval` run add up to the whole,
and parts that do not belong together are refused."""
import json

import merge_eval_reports as M
import pytest


def _part(records, labels, enc, plain, err, spi, **kw):
    r = {"model": "m", "dataset": "cifar10", "data": "d", "mode": "latency", "exact_only": False,
         "records": records, "labels": labels, "predictions": enc, "plaintext_predictions": plain,
         "count": len(records), "max_logit_error": err, "seconds_per_image": spi}
    r.update(kw)
    return r


def test_parts_add_up():
    a = _part([0, 1], [3, 8], [3, 1], [3, 8], 0.01, 50.0)
    b = _part([2, 3, 4], [8, 0, 6], [8, 0, 6], [8, 0, 5], 0.02, 60.0)
    m = M.merge([a, b])
    assert m["count"] == 5 and m["records"] == [0, 1, 2, 3, 4]
    assert m["encrypted_accuracy"] == pytest.approx(4 / 5)
    assert m["plaintext_accuracy"] == pytest.approx(4 / 5)
    assert m["agree"] == 3 and m["agreement"] == pytest.approx(3 / 5)
    assert m["max_logit_error"] == 0.02
    assert m["seconds_per_image"] == pytest.approx((2 * 50 + 3 * 60) / 5)


def test_hybrid_stage_times_are_weighted():
    a = _part([0], [1], [1], [1], 0.1, {"preprocessing": 2.0, "online": 0.1}, mode="hybrid")
    b = _part([1, 2, 3], [1, 1, 1], [1, 1, 1], [1, 1, 1], 0.1, {"preprocessing": 1.0, "online": 0.2},
              mode="hybrid")
    m = M.merge([a, b])
    assert m["seconds_per_image"]["preprocessing"] == pytest.approx(1.25)
    assert m["seconds_per_image"]["online"] == pytest.approx(0.175)


def test_overlap_and_mismatch_are_refused(tmp_path):
    a = _part([0, 1], [3, 8], [3, 8], [3, 8], 0.01, 50.0)
    with pytest.raises(ValueError, match="record 1 is in more than one report"):
        M.merge([a, _part([1], [8], [8], [8], 0.0, 1.0)])
    with pytest.raises(ValueError, match="differ in model"):
        M.merge([a, _part([5], [8], [8], [8], 0.0, 1.0, model="other")])
    # The command line reports the problem and exits 1, no traceback.
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(a))
    assert M.main([str(pa), str(pb)]) == 1
    out = tmp_path / "m.json"
    assert M.main([str(pa), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["count"] == 2


def test_data_folder_relative_or_absolute_is_the_same_folder(tmp_path):
    rel = _part([0], [3], [3], [3], 0.01, 1.0, data="../shared/data/cifar10")
    absolute = _part([1], [8], [8], [8], 0.01, 1.0,
                     data=M.os.path.normpath(M.os.path.join(M.ROOT, "../shared/data/cifar10")))
    assert M.merge([rel, absolute])["count"] == 2
    with pytest.raises(ValueError, match="differ in data"):
        M.merge([rel, _part([1], [8], [8], [8], 0.01, 1.0, data=str(tmp_path))])
