"""Shared fixtures: a deterministic stub NLI backend and tiny random Hugging Face NLI models."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from start.scoring.nli import NLIPrediction

FACT = re.compile(r"\bF\d+\b")


class StubNLI:
    """Entailment by a rule a reader can check by eye: every fact token ``F<n>`` of the hypothesis must
    occur in the premise, and the hypothesis must state at least one. Optional ``table`` entries
    {(premise, hypothesis): prob} override the rule. Records every pair it is asked about."""

    threshold = 0.5

    def __init__(self, table: dict | None = None, fingerprint: str = "stub-v1"):
        self.table = table or {}
        self.fingerprint = fingerprint
        self.calls: list[list[tuple[str, str]]] = []

    def prob(self, premise: str, hypothesis: str) -> float:
        if (premise, hypothesis) in self.table:
            return self.table[(premise, hypothesis)]
        facts = set(FACT.findall(hypothesis))
        return 1.0 if facts and facts <= set(FACT.findall(premise)) else 0.0

    def predict(self, pairs):
        self.calls.append(list(pairs))
        probs = np.array([self.prob(p, h) for p, h in pairs], dtype=float)
        return NLIPrediction(probs, np.zeros(len(pairs), dtype=bool))

    @property
    def pairs_seen(self) -> list[tuple[str, str]]:
        return [p for call in self.calls for p in call]


@pytest.fixture
def stub_nli():
    return StubNLI()


WORDS = ("premise hypothesis : the a tower was built in 1889 1925 paris is france title it big "
         "f1 f2 f3 f4 f5 . , 1 0 eiffel and of").split()


def _word_tokenizer(tmp: Path, *, pair_template: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "</s>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    if pair_template:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        kw = {"cls_token": "[CLS]", "sep_token": "[SEP]"}
    else:
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
        kw = {"eos_token": "</s>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   model_max_length=64, **kw)
    fast.save_pretrained(tmp)
    return fast, vocab


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A 2-layer random BERT NLI cross-encoder whose entailment class is index 2 (not 0)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert-nli")
    _, vocab = _word_tokenizer(folder, pair_template=True)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=3, pad_token_id=0,
                     id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
                     label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2})
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_t5_nli(tmp_path_factory) -> Path:
    """A 1-layer random T5 in the TRUE format ("premise: ... hypothesis: ..." -> "1"/"0")."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny-t5-nli")
    _, vocab = _word_tokenizer(folder, pair_template=False)
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(vocab), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=vocab["</s>"])
    T5ForConditionalGeneration(cfg).save_pretrained(folder)
    return folder


CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} </s> {% endfor %}"
                 "{% if add_generation_prompt %}<assistant> {% endif %}")


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory) -> Path:
    """A 2-layer random Llama with a word-level tokenizer and a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    words = sorted(set(WORDS + "document title question answer <user> <assistant> [ ] ( ) cite".split()))
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "</s>"] + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    # head_dim 64: the smallest size vLLM's CPU attention kernels support
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=512,
                      pad_token_id=0, eos_token_id=2, bos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def build_cross_encoder(folder: Path, *, seed: int = 0, init_range: float = 0.02) -> Path:
    """A 2-layer random BERT NLI cross-encoder (entailment = index 2) in ``folder``; a large ``init_range``
    makes its entailment probabilities depend on the words and spread over [0, 1] (at the usual 0.02 they
    all sit near 1/3)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    _, vocab = _word_tokenizer(folder, pair_template=True)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=3, pad_token_id=0,
                     id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
                     label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2}, initializer_range=init_range)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sharp_cross_encoder(tmp_path_factory) -> Path:
    """A tiny random NLI judge that entails some pairs and rejects others (probabilities spread out)."""
    return build_cross_encoder(tmp_path_factory.mktemp("sharp-bert-nli"), seed=0, init_range=0.5)


CITES = ("[1]", "[2]", "[3]")


def build_citing_lm(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer random Llama whose small word-level vocabulary (27 tokens) holds ``[1]``, ``[2]``, ``[3]``
    and ``.`` as whole tokens: about half of its (near-uniform) samples carry real ALCE citations
    (``... [2] ...``), so the scorer's citation metrics of its answers are not all zero."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted(set("the tower was built in 1889 paris is france big eiffel f1 f2 f3 <user> <assistant> "
                       "document title question answer".split()))
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "</s>", *CITES, ".", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=512,
                      pad_token_id=0, eos_token_id=2, bos_token_id=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def citing_causal_lm(tmp_path_factory) -> Path:
    return build_citing_lm(tmp_path_factory.mktemp("citing-llama"))
