"""The simulated assistant worker: consumes ``to_secretary``, thinks, replies to
``to_telegram``.

Per message: look the user's memory up through rest_service's API, sometimes search RAG,
call the (fake) LLM with realistic latency and token counts, sometimes call a tool, save
a fact when the message holds one, and push the reply. Failures happen at realistic rates:
the LLM rate-limits now and then (the user gets an apology), a tool times out, and a few
messages fail outright (counted as ``messages_processed_total{status="error"}``).

Memory operations are counted by rest_service (``memory_operations_total``), which serves
them; the demo runs both in one process, so counting here too would count them twice.
"""

from __future__ import annotations

import httpx
import structlog

from otel_assist.logs import get_logger
from otel_assist.metrics import llm_call, rag_search, tool_call
from otel_assist.queues import Message, QueueConsumer, QueueProducer
from otel_assist_demo.synthetic import MODELS, TOOLS
from otel_assist_demo.world import TO_SECRETARY, TO_TELEGRAM, World

log = get_logger("otel_assist_demo.assistant", component="assistant")


class LLMRateLimitError(RuntimeError):
    """The LLM provider answered 429 (simulated)."""


class ToolTimeoutError(TimeoutError):
    """A tool did not answer in time (simulated)."""


class UnexpectedReplyError(ValueError):
    """The LLM's reply could not be parsed (simulated): the message fails."""


class Assistant:
    def __init__(self, world: World) -> None:
        self.world = world
        self.reply = QueueProducer(world.redis, TO_TELEGRAM, source="assistant")

    def consumers(self, workers: int) -> list[QueueConsumer]:
        """``workers`` consumers of to_secretary (only the first samples queue gauges)."""
        return [
            QueueConsumer(
                self.world.redis, TO_SECRETARY, self.handle, source="telegram", sample=i == 0
            )
            for i in range(workers)
        ]

    async def handle(self, msg: Message) -> None:
        # Bound in the context (not only on this module's logger) so the library's own
        # llm_call / llm_response / tool_call / tool_result lines carry the component too.
        with structlog.contextvars.bound_contextvars(component="assistant"):
            await self._handle(msg)

    async def _handle(self, msg: Message) -> None:
        w = self.world
        payload = msg.payload if isinstance(msg.payload, dict) else {"text": str(msg.payload)}
        user_id = msg.user_id
        text = str(payload.get("text", ""))
        log.info(
            "processing user message",
            event_type="queue_pop",
            user_id=user_id,
            wait_ms=round((msg.wait_s or 0.0) * 1000, 1),
        )
        known = await self.recall(user_id, text)
        if w.rng.random() < 0.4:
            with rag_search():
                await w.sleep(w.latency(0.06))
            log.info("rag search done", event_type="tool_result", user_id=user_id)

        model = w.rng.choice(MODELS)
        answer: str
        try:
            with llm_call(model) as call:  # logs llm_call / llm_response itself
                await w.sleep(w.latency(0.35 if model != "gpt-4o" else 0.7))
                if w.rng.random() < 0.05:
                    raise LLMRateLimitError("429 Too Many Requests from provider")
                call.tokens(
                    input_tokens=120 + 8 * len(text) + 30 * len(known) + w.rng.randrange(400),
                    output_tokens=20 + w.rng.randrange(300),
                )
            answer = f"Here's what I found about: {text[:60]}"
        except LLMRateLimitError as exc:
            log.warning("llm rate limited; apologising", event_type="warning", error=str(exc))
            answer = "Sorry, I'm a bit overloaded right now. Try again in a minute?"

        if w.rng.random() < 0.35:
            await self.use_tool(w.rng.choice(TOOLS), user_id)
        fact = payload.get("fact")
        if isinstance(fact, str) and user_id is not None:
            await self.remember(user_id, fact)
        if w.rng.random() < 0.02:
            raise UnexpectedReplyError("LLM reply is not valid JSON for the tool schema")
        await self.reply.push(
            {"chat_id": payload.get("chat_id"), "text": answer, "in_reply_to": msg.id},
            type="assistant_reply",
            user_id=user_id,
        )

    async def use_tool(self, tool: str, user_id: int | None) -> None:
        w = self.world
        try:
            with tool_call(tool):  # logs tool_call / tool_result itself
                await w.sleep(w.latency(0.08))
                if w.rng.random() < 0.06:
                    raise ToolTimeoutError(f"{tool} did not answer within 5 s")
        except ToolTimeoutError as exc:
            log.warning("tool failed", event_type="warning", tool_name=tool, error=str(exc))

    async def recall(self, user_id: int | None, text: str) -> list[str]:
        """The user's facts that share a word with the message (rest_service search)."""
        if user_id is None:
            return []
        words = [word for word in text.lower().split() if len(word) > 4]
        params: dict[str, str | int] = {"limit": 20}
        if words:
            params["q"] = self.world.rng.choice(words).strip("?.,!'\"<>")[:50]
        try:
            resp = await self.world.api.get(f"/memories/user/{user_id}", params=params)
            resp.raise_for_status()
        except (TimeoutError, httpx.HTTPError) as exc:
            log.warning("memory lookup failed", event_type="warning", error=repr(exc))
            return []
        facts = [str(row.get("content", "")) for row in resp.json()]
        log.info(
            "memory retrieved", event_type="memory_retrieve", user_id=user_id, facts=len(facts)
        )
        return facts

    async def remember(self, user_id: int, fact: str) -> None:
        try:
            stored = await self.world.remember(user_id, fact, "assistant")
        except httpx.HTTPError as exc:
            log.warning("memory save failed", event_type="warning", error=repr(exc))
            return
        if stored:
            log.info("memory saved", event_type="memory_save", user_id=user_id)
