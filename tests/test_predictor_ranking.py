"""The issue-13 diagnostics: the predictor-ranking path encoding (BANANAS) on known NB201
cells, its scores, and the needle diagnosis's reading of a real job."""

import numpy as np

from benchmarks.predictor_ranking import TABLE, load_table, path_encoding, score
from spaces.nb201 import OPS


def test_path_encoding_counts_the_paths_no_none_cuts() -> None:
    conv = OPS.index("nor_conv_3x3")
    none = OPS.index("none")
    full = np.full((1, 6), conv)
    assert path_encoding(full).sum() == 4  # every input-to-output path is open
    assert path_encoding(np.full((1, 6), none)).sum() == 0
    # cut edge 0->3 (column 3): the direct path closes, the three others stay
    one_cut = full.copy()
    one_cut[0, 3] = none
    enc_full, enc_cut = path_encoding(full)[0], path_encoding(one_cut)[0]
    assert enc_cut.sum() == 3 and (enc_cut <= enc_full).all()


def test_score_ranks_a_perfect_predictor_first() -> None:
    y = np.arange(100.0)
    rank = np.argsort(np.argsort(-y))
    s = score(y.copy(), y, rank)
    assert s["best_pick_rank"] == 0 and s["spearman_all"] > 0.999
    assert score(-y, y, rank)["best_pick_rank"] == 90  # the 10 worst picked: the best is 90th


def test_the_shipped_table_loads_in_decision_order() -> None:
    x, y = load_table(TABLE, "val_acc")
    assert x.shape == (15625, 6) and len(y) == 15625
    assert len({tuple(r) for r in x}) == 15625


def test_needle_diagnosis_reads_the_incumbent_at_each_budget() -> None:
    from benchmarks.needle_diagnosis import BUDGETS, diagnose

    x, y = load_table(TABLE, "val_acc")
    r = diagnose("random", 0, None, x, y)
    ranks = [r[b]["incumbent_rank"] for b in BUDGETS]
    assert ranks == sorted(ranks, reverse=True)  # more evaluations, never a worse incumbent
    for b in BUDGETS:
        assert (r[b]["incumbent_rank"] == 0) == (r[b]["edits_from_best"] == 0)
        assert 0 <= r[b]["best_neighbours_seen"] <= 24
