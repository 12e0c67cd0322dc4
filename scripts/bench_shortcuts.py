"""Position shortcuts of the default task -> bench/shortcuts.{json,md}.

    python scripts/bench_shortcuts.py                      # the default config (conf/config.yaml)
    python scripts/bench_shortcuts.py eval_questions=null  # Hydra overrides

On the default run's held-out prompts (``data.max_docs`` documents, ``eval_split``, first
``eval_questions``), measures where the gold documents sit (``gold_position_share`` per position and its
maximum; 1/k is uniform), the share of dev and test questions that need two or more documents, and the
constant baselines (:mod:`start.shortcuts`: the reference answer citing a fixed [k], citing every
document, copying each document's first sentence with its citation), scored by the project's scorer with
the configured NLI model. A trained policy must beat ``best_constant_citation_f1``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from start.config import RunConfig, build_run_config
from start.data import load_source, qa_record_to_dict
from start.io import atomic_open, write_json
from start.sampling.stage import load_questions
from start.shortcuts import best_baseline, constant_baselines, gold_position_share

log = logging.getLogger("bench_shortcuts")
ROOT = Path(__file__).resolve().parent.parent
METRICS = ("citation_rec", "citation_prec", "citation_f1", "comprehensiveness")


def multi_doc_share(source: str, split: str) -> float:
    """Share of a split's questions whose gold documents number two or more."""
    records = load_source(source, split)
    need = [len(r.meta.get("gold_doc_ids") or ()) >= 2 for r in records]
    return sum(need) / len(need) if need else 0.0


def measure(cfg: RunConfig) -> tuple[dict, dict]:
    """The benchmark's keys (bench/shortcuts.json), and what it was measured on (for the Markdown)."""
    data = cfg.eval.data
    records = load_questions(data)
    n = int(data.max_docs or max(len(r.docs) for r in records))
    shares = gold_position_share(records, n)
    log.info("%d held-out prompts (%s, %s documents); gold positions %s", len(records), data.split, n,
             [round(x, 3) for x in shares])
    scorer = cfg.eval.judge.scorer()
    try:
        baselines = constant_baselines([qa_record_to_dict(r) for r in records], scorer, n_boot=cfg.eval.n_boot)
    finally:
        scorer.close()
    best = best_baseline(baselines)
    source = data.source
    info = {"source": source, "eval_split": data.split, "eval_questions": len(records), "max_docs": n,
            "scorer_nli": cfg.eval.judge.nli.model, "best_constant": best}
    return {
        "gold_position_share": shares,
        "gold_position_max_share": max(shares),
        "multi_doc_share_dev": multi_doc_share(source, "dev"),
        "multi_doc_share_test": multi_doc_share(source, "test"),
        "constant_baselines": {name: {k: b["metrics"][k]["value"] for k in METRICS if k in b["metrics"]}
                               for name, b in baselines.items()},
        "best_constant_citation_f1": baselines[best]["metrics"]["citation_f1"]["value"],
    }, info


def markdown(res: dict, c: dict) -> str:
    lines = [
        "# Position shortcuts of the default task (`make bench-shortcuts`)", "",
        f"Held-out prompts of the default config: {c['eval_questions']} `{c['eval_split']}` questions of "
        f"`{c['source']}`, {c['max_docs']} documents each (`data.max_docs`), scored by the project's scorer "
        f"(NLI `{c['scorer_nli']}`).", "",
        "| measure | value | target |", "|---|---:|---|",
        "| gold documents at positions 1..k | " + " / ".join(f"{x:.3f}" for x in res["gold_position_share"])
        + f" | uniform {1 / len(res['gold_position_share']):.3f} |",
        f"| gold_position_max_share | {res['gold_position_max_share']:.3f} | <= 0.45 |",
        f"| multi_doc_share_dev (>= 2 gold documents, whole split) | {res['multi_doc_share_dev']:.3f} | >= 0.40 |",
        f"| multi_doc_share_test | {res['multi_doc_share_test']:.3f} | >= 0.40 |", "",
        "## Constant baselines", "",
        "`[k]`: the reference answer with every sentence citing document k; `cite-all`: every sentence cites "
        "every document; `copy-first-sentence`: the first sentence of each document with its citation. A "
        "trained policy has to beat the best of them. The `[k]` rows are the position habit with the right "
        "content; copying is attributable by construction (every sentence is its own document's) but answers "
        "little, hence its low comprehensiveness.", "",
        "| baseline | " + " | ".join(METRICS) + " |", "|---|" + "---:|" * len(METRICS)]
    for name, m in res["constant_baselines"].items():
        best = " **(best)**" if name == c["best_constant"] else ""
        lines.append(f"| `{name}`{best} | " + " | ".join(f"{m[k]:.1f}" if k in m else "-" for k in METRICS) + " |")
    lines += ["", f"best_constant_citation_f1 = **{res['best_constant_citation_f1']:.1f}** (`{c['best_constant']}`)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    overrides = list(sys.argv[1:] if argv is None else argv)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    res, info = measure(build_run_config(cfg))
    out = ROOT / "bench" / "shortcuts.json"
    write_json(out, res)
    with atomic_open(out.with_suffix(".md")) as f:
        f.write(markdown(res, info))
    log.info("wrote %s and %s\n%s", out, out.with_suffix(".md"), markdown(res, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
