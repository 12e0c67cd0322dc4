"""Render one user message as a generation prompt, through the model's chat template when it has one.

The same rule as the sampler's prompts (:mod:`start.sampling.prompt`): with a chat template the message is
the user turn and the generation prompt opens the assistant turn; without one (base models) the message is
followed by a plain-text cue that invites the continuation.
"""

from __future__ import annotations


def render_user_message(tokenizer, message: str, *, use_chat_template: bool = True,
                        plain_cue: str = "Response:") -> str:
    """A prompt string for ``message``; ``plain_cue`` ends it when no chat template is used."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": message.strip()}], tokenize=False,
                                             add_generation_prompt=True)
    return f"{message.strip()}\n\n{plain_cue}" if plain_cue else f"{message.strip()}\n\n"
