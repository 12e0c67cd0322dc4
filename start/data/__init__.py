"""QA data: one record type and loader for the ALCE formats, the embedded default data set, BM25 retrieval.

    from start.data import load_qa, load_embedded, load_embedded_corpus, Retriever, RetrievalConfig
    dev = load_embedded("dev")                      # list[QARecord], 5 documents each
    passages = load_embedded_corpus()               # list[Passage]
    retriever = Retriever.build([p.to_document() for p in passages], RetrievalConfig(k=5))
    hits = retriever.search([r.question for r in dev])   # [[(passage index, score), ...], ...]
"""

from start.data.embedded import EMBEDDED_DIR, SPLITS, load_embedded, load_embedded_corpus, load_source
from start.data.records import Passage, QARecord, load_qa, parse_qa_record, parse_qa_records, qa_record_to_dict
from start.data.retrieval import RetrievalConfig, Retriever, retrieve_docs, tokenize

__all__ = [
    "EMBEDDED_DIR", "SPLITS", "Passage", "QARecord", "RetrievalConfig", "Retriever", "load_embedded",
    "load_embedded_corpus", "load_qa", "load_source", "parse_qa_record", "parse_qa_records", "qa_record_to_dict",
    "retrieve_docs", "tokenize",
]
