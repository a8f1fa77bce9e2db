import numpy as np
import pytest
from scipy import stats

from traitdose.compare import (
    bootstrap_ci, compare_records, item_scores, paired_comparison, sign_flip_pvalue,
)
from traitdose.evaluate import SampleRecord


def scipy_paired_p(a, b):
    res = stats.permutation_test(
        (np.asarray(b), np.asarray(a)), lambda x, y: np.mean(x - y), permutation_type="samples",
        n_resamples=np.inf, alternative="two-sided",
    )
    return res.pvalue


@pytest.mark.parametrize("seed", range(5))
def test_exact_sign_flip_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(size=9)
    b = a + rng.normal(0.1, 0.2, size=9)
    ours = sign_flip_pvalue(b - a, 1000, rng)
    assert ours == pytest.approx(scipy_paired_p(a, b))


def test_sign_flip_hand_computed():
    # deltas (1, 2, 3): mean 2; sign patterns reaching |mean| >= 2 are +++ and ---: p = 2/8
    assert sign_flip_pvalue(np.array([1.0, 2.0, 3.0]), 10, np.random.default_rng(0)) == pytest.approx(0.25)
    # one pair: both flips reach the observed magnitude
    assert sign_flip_pvalue(np.array([0.7]), 10, np.random.default_rng(0)) == 1.0
    # all ties
    assert sign_flip_pvalue(np.zeros(4), 10, np.random.default_rng(0)) == 1.0


def test_monte_carlo_sign_flip_close_to_exact_and_t_test():
    rng = np.random.default_rng(3)
    deltas = rng.normal(0.3, 1.0, size=40)
    p_mc = sign_flip_pvalue(deltas, 20_000, np.random.default_rng(1))
    p_t = stats.ttest_1samp(deltas, 0).pvalue
    assert abs(p_mc - p_t) < 0.03
    assert 0 < p_mc <= 1


def test_bootstrap_matches_scipy_percentile():
    rng = np.random.default_rng(7)
    deltas = rng.normal(0.2, 0.5, size=30)
    ours = bootstrap_ci(deltas, 20_000, 0.95, np.random.default_rng(0))
    ref = stats.bootstrap((deltas,), np.mean, n_resamples=20_000, confidence_level=0.95, method="percentile",
                          random_state=np.random.default_rng(1)).confidence_interval
    assert ours[0] == pytest.approx(ref.low, abs=0.02)
    assert ours[1] == pytest.approx(ref.high, abs=0.02)


def test_paired_comparison_drops_missing_and_counts():
    ref = {"a": 0.2, "b": 0.5, "c": None, "d": 0.4}
    arm = {"a": 0.6, "b": 0.5, "c": 0.9, "d": 0.1, "e": 0.3}
    r = paired_comparison(ref, arm, seed=0)
    assert r.n == 3 and r.dropped == 2
    assert r.delta == pytest.approx((0.4 + 0.0 - 0.3) / 3)
    assert (r.wins, r.losses, r.ties) == (1, 1, 1)
    assert r.se == pytest.approx(np.std([0.4, 0.0, -0.3], ddof=1) / np.sqrt(3))
    assert r.p_value_t == pytest.approx(stats.ttest_rel([0.6, 0.5, 0.1], [0.2, 0.5, 0.4]).pvalue)
    assert r.ci_low <= r.delta <= r.ci_high


def test_tiny_and_empty_samples():
    empty = paired_comparison({"a": None}, {"a": 0.5})
    assert empty.n == 0 and empty.delta is None and empty.p_value is None
    one = paired_comparison({"a": 0.1}, {"a": 0.5})
    assert one.n == 1 and one.se is None and one.p_value == 1.0 and one.ci_low == one.ci_high == pytest.approx(0.4)
    ties = paired_comparison({"a": 0.5, "b": 0.2}, {"a": 0.5, "b": 0.2})
    assert ties.delta == 0 and ties.p_value == 1.0 and ties.p_value_t is None


def _rec(model_item, score, trait="truthfulness", refused=False, epoch=1, protocol="p"):
    return SampleRecord(item_id=model_item, epoch=epoch, trait=trait, domain="health_medicine", score=score,
                        refused=refused, protocol=protocol, response="")


def test_item_scores_average_epochs_and_skip_missing():
    recs = [_rec("a", 0.2), _rec("a", 0.4, epoch=2), _rec("b", None), _rec("c", None), _rec("c", 1.0, epoch=2)]
    assert item_scores(recs) == {"a": pytest.approx(0.3), "b": None, "c": 1.0}


def test_compare_records_non_refused_subset_and_protocol_guard():
    base = [_rec("a", 0.2), _rec("b", 0.3), _rec("c", 0.4)]
    baseline = [_rec("a", 0.2), _rec("b", 0.3), _rec("c", 0.4)]
    trait = [_rec("a", 0.9), _rec("b", 0.0, refused=True), _rec("c", 0.8)]
    out = compare_records({"base": base, "baseline": baseline, "trait": trait}, ["trait", "baseline"],
                          bootstrap_samples=200, permutations=200, confidence=0.95, seed=0)
    primary = next(c for c in out["comparisons"] if (c["reference"], c["arm"], c["subset"]) == ("baseline", "trait", "overall"))
    nonref = next(c for c in out["comparisons_non_refused"] if (c["reference"], c["arm"], c["subset"]) == ("baseline", "trait", "overall"))
    assert primary["n"] == 3 and nonref["n"] == 2
    assert nonref["delta"] == pytest.approx((0.7 + 0.4) / 2)
    assert out["models"]["trait"]["overall"]["refusal_rate"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="judge protocols"):
        compare_records({"base": base, "trait": [_rec("a", 0.5, protocol="q")]}, ["trait"],
                        bootstrap_samples=200, permutations=200, confidence=0.95, seed=0)


def test_changed_responses_counts_text_differences():
    from traitdose.compare import changed_responses

    ref = [_rec("a", 0.5), _rec("b", 0.5)]
    arm = [_rec("a", 0.5).model_copy(update={"response": "different"}), _rec("b", 0.5)]
    assert changed_responses(ref, arm) == {"n": 2, "changed": 1}
