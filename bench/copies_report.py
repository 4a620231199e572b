"""Markdown for suites 9 and 9b (duplicates and copy detection), for bench/report.py."""

from __future__ import annotations

from typing import Any

from bench.report_format import measured_by


def duplicates(d: dict[str, Any]) -> list[str]:
    lines = [
        "## 9. Duplicates: the pass over a whole gallery",
        "",
        *measured_by(d.get("run")),
        f"Synthetic {d['dim']}-d vectors in clusters (neighbours similar but below the "
        f"threshold), {d['planted_share']:.0%} of them a planted copy of another (cosine "
        f"about 0.99); threshold {d['threshold']}. `exact` = every vector in memory, one "
        "blocked matrix product; `range` = batched range searches on the HNSW index "
        f"(`app/copies/finder.py`; `auto` takes exact up to {d['exact_max_rows']:,} rows). "
        "Times include reading the vectors from Milvus.",
        "",
        "| backend | rows | method | seconds | planted recovered | other pairs |",
        "|---|---|---|---|---|---|",
    ]
    for backend, result in d["results"].items():
        for rows, by_method in result["sizes"].items():
            for method in ("exact", "range"):
                if method in by_method:
                    r = by_method[method]
                    lines.append(
                        f"| {backend} | {int(rows):,} | {method} | {r['seconds']:.1f} | "
                        f"{r['planted_recovered']}/{r['planted']} | {r['other_pairs']} |"
                    )
        growth = ", ".join(f"{k}: N^{v}" for k, v in result["growth"].items())
        if growth:
            lines += ["", f"Growth ({backend}): {growth}."]
    return [*lines, ""]


def copies(c: dict[str, Any]) -> list[str]:
    head = ["## 9b. Copy detection on real photos", "", *measured_by(c.get("run"))]
    if "skipped" in c:
        return [*head, f"Skipped: {c['skipped']}.", ""]
    cal, test = c["calibration"], c["test"]
    lines = [
        *head,
        f"{c['model']}; {c['originals']} originals (Grocery shelf photos in runs of "
        "consecutive shots of one product, and Imagenette). Calibration as the app does it "
        f"on {cal['originals']} of them ({len(cal['kinds'])} copy kinds): threshold "
        f"**{cal['threshold']}** (on its sample: precision {cal['precision']}, recall "
        f"{cal['recall']}; {cal['left_out_as_likely_copies']} neighbour pairs left out as "
        f"likely copies; without that step the threshold would be "
        f"{cal['threshold_without_leaving_out']}). Test: the other {test['originals']} "
        f"originals ({test['grocery']} Grocery), {test['copies']:,} fresh copies; every "
        f"pair counted ({test['negative_pairs']:,} negative pairs, "
        f"{test['same_product_pairs']:,} of them two shots of one product). pHash = "
        "imagehash's 64-bit pHash, copy when the Hamming distance is at most 10 (its usual "
        "threshold), and at the largest distance that keeps the embedding's precision.",
        "",
        *_verified_setup(cal, test),
        "",
        "| copies | method | precision | recall | false pairs |",
        "|---|---|---|---|---|",
    ]
    for group in ("training kinds", "held-out kinds"):
        e = c["embedding"][group]
        lines.append(
            f"| {group} | embedding ≥ {cal['threshold']} | {e['precision']} | "
            f"{e['recall']} | {e['false_pairs']} |"
        )
        for name, p in c["phash"][group].items():
            label = (
                f"pHash, Hamming ≤ {p['hamming']} (equal precision)"
                if "hamming" in p
                else f"pHash, Hamming ≤ {name.split('<=')[-1]} (usual)"
            )
            lines.append(
                f"| {group} | {label} | {p['precision']} | {p['recall']} | {p['false_pairs']} |"
            )
        if v := c.get("verified", {}).get(group):
            rule = cal["verified"]
            p = v["phash_at_equal_precision"]
            lines += [
                f"| {group} | **verified**: embedding ≥ {rule['candidate']}, then verified "
                f"score ≥ {rule['verified_score']} | {v['precision']} | {v['recall']} | "
                f"{v['false_pairs']} |",
                f"| {group} | pHash, Hamming ≤ {p['hamming']} (the verified rule's precision) | "
                f"{p['precision']} | {p['recall']} | {p['false_pairs']} |",
            ]
        oracle = c.get("embedding_oracle", {}).get(group)
        if oracle and oracle["threshold"] is not None:
            lines.append(
                f"| {group} | embedding ≥ {oracle['threshold']} (picked on the test "
                f"set for pHash's usual precision) | {oracle['precision']} | "
                f"{oracle['recall']} | {oracle['false_pairs']} |"
            )
    lines += [
        "",
        "| kind | embedding recall | verified recall | pHash recall (≤ 10) |",
        "|---|---|---|---|",
    ]
    for kind, r in c["per_kind"].items():
        verified = r.get("verified_recall", "")
        lines.append(f"| {kind} | {r['recall']} | {verified} | {r['phash_recall']} |")
    return [*lines, ""]


def _verified_setup(cal: dict[str, Any], test: dict[str, Any]) -> list[str]:
    """The verified rule's calibration (app/copies/verified.py), when the run has one."""
    rule = cal.get("verified")
    if not rule:
        return []
    return [
        "Verified = the embedding proposes, geometric verification decides "
        "(`app/copies/decision.py`): pairs from the candidate threshold "
        f"**{rule['candidate']}** are verified (SIFT on the stored thumbnails, one "
        "similarity transform by RANSAC, matches within half a pixel, then the fit's pixels "
        "compared block by block), a copy from verified "
        f"score **{rule['verified_score']}**; both calibrated on the same sample (on it: "
        f"precision {rule['precision']}, recall {rule['recall']}; "
        f"{rule['neighbour_pairs']:,} neighbour pairs, {rule['left_out_as_likely_copies']} "
        f"left out as likely copies). Test: {test['verified_pairs']:,} candidate pairs "
        f"verified in {test['verify_seconds']} s."
    ]
