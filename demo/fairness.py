"""Each visitor's share of the model queue: at most a few model requests waiting or running per
client, and the waiting ones served round-robin across clients.

Gradio's queue is one list per concurrency group, served first come first served: one client could
fill all its places, and its requests all ran before anyone else's. :func:`share_the_queue` wraps
the queue's ``push`` so that a client (:func:`client_of`) with :data:`MAX_PER_CLIENT` model
requests already waiting or running is refused at once with a plain message, and a new request is
placed after the waiting requests of clients that have fewer.
"""
from __future__ import annotations

import ipaddress

MAX_PER_CLIENT = 2       # model requests (generate, compare, renders) one client may have waiting or running


def client_of(request) -> str:
    """Who sent a request (one share of the queue, one place in the Live tab's line each): its
    address, or behind a proxy on this machine or network (a Space's) the address the proxy
    appended to X-Forwarded-For (the last one: a client may write anything before it)."""
    host = str(getattr(getattr(request, "client", None), "host", None) or "local")
    forwarded = (getattr(request, "headers", None) or {}).get("x-forwarded-for", "")
    try:
        behind_proxy = ipaddress.ip_address(host).is_private      # loopback included
    except ValueError:
        behind_proxy = host == "local"
    last = forwarded.split(",")[-1].strip()
    return last if behind_proxy and last else host


def share_the_queue(demo, concurrency_id: str = "model", per_client: int = MAX_PER_CLIENT) -> None:
    """Give each client at most ``per_client`` places in ``concurrency_id``'s queue and slots, and
    order the waiting requests round-robin by client. Call after ``demo.queue(...)``."""
    queue = demo._queue
    push = queue.push

    async def fair_push(body, request, username):
        fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
        if fn is None or fn.concurrency_id != concurrency_id:
            return await push(body, request, username)
        key = client_of(request)
        running = [e for job in queue.active_jobs if job for e in job if e.concurrency_id == concurrency_id]
        waiting = list(queue.event_queue_per_concurrency_id.get(concurrency_id, _Empty()).queue)
        if sum(client_of(e.request) == key for e in running + waiting) >= per_client:
            return False, [{"__type__": "validate", "is_valid": False, "parameter_name": "request",
                            "message": f"You already have {per_client} requests waiting or running; each visitor "
                                       f"may have {per_client} at a time, so that everyone is served. Try again "
                                       "when one has finished."}], "validator_error"
        answer = await push(body, request, username)
        if answer[0]:
            _round_robin(queue.event_queue_per_concurrency_id[concurrency_id].queue, running)
        return answer

    queue.push = fair_push


def _round_robin(waiting: list, running: list) -> None:
    """Reorder ``waiting`` in place: each client's k-th request (counting those running) after every
    other client's (k-1)-th; the order among equals is kept."""
    seen: dict[str, int] = {}
    for event in running:
        key = client_of(event.request)
        seen[key] = seen.get(key, 0) + 1
    ranks = []
    for position, event in enumerate(waiting):
        key = client_of(event.request)
        ranks.append((seen.get(key, 0), position, event))
        seen[key] = seen.get(key, 0) + 1
    waiting[:] = [event for *_, event in sorted(ranks, key=lambda r: r[:2])]


class _Empty:
    queue: list = []
