"""LLM relabeling of typed descriptions (EMO-SUPERB's method) through any OpenAI-compatible API."""

from emostore.labels.llm.cache import AnswerCache, default_cache_path
from emostore.labels.llm.prompt import DEFAULT_CLASSES, default_prompt, format_item, validate_response
from emostore.labels.llm.runner import LLMError, LLMResult, LLMSettings, meta_path, relabel_llm, write_result

__all__ = ["AnswerCache", "DEFAULT_CLASSES", "LLMError", "LLMResult", "LLMSettings", "default_cache_path",
           "default_prompt", "format_item", "meta_path", "relabel_llm", "validate_response", "write_result"]
