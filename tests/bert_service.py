"""An in-process server that speaks bert-as-service 1.10.0's ZMQ protocol, for tests.

What bert-serving-client 1.10.0 does (bert_serving/client/__init__.py):
- it PUSHes multipart ``[client_id, payload, req_id, msg_len]`` to ``port``; payload is
  ``b"SHOW_CONFIG"``, ``b"SHOW_STATUS"`` or a JSON list of strings to encode;
- it SUBscribes on ``port_out`` with its identity as topic and reads, for a config
  request, ``[client_id, json_config, req_id]`` and, for an encode request,
  ``[client_id, json{"dtype", "shape", "tokens"}, raw_array_bytes, req_id]``.

A PUB socket drops what it sends before the subscriber's subscription has arrived, and a
fresh client's first request often beats its subscription: so the server uses XPUB,
records the subscriptions it receives, and holds a reply until its client has subscribed.

The "model" is any deterministic function of the texts (by default a hashed bag of
characters), since what is tested is the round trip, not BERT.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable

import numpy as np
import zmq

SERVER_VERSION = "1.10.0"


def hashed_characters(texts: list[str], dimensions: int = 32) -> np.ndarray:
    """A deterministic bag of characters: each character adds 1 to a hashed coordinate."""
    out = np.zeros((len(texts), dimensions), dtype=np.float32)
    for row, text in enumerate(texts):
        for char in text:
            slot = int.from_bytes(hashlib.blake2b(char.encode("utf-8"), digest_size=4).digest(),
                                  "little") % dimensions
            out[row, slot] += 1.0
    return out


class BertService:
    """Serve on 127.0.0.1 (free ports) from a daemon thread; use as a context manager."""

    def __init__(self, encoder: Callable[[list[str]], np.ndarray] | None = None,
                 max_seq_len: int = 25):
        self.encoder = encoder or hashed_characters
        self.max_seq_len = max_seq_len
        self.requests: list[bytes] = []  # payloads received, in order (for assertions)
        self._stop = threading.Event()
        self._context = zmq.Context()
        self._pull = self._context.socket(zmq.PULL)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pub = self._context.socket(zmq.XPUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.port = self._pull.bind_to_random_port("tcp://127.0.0.1")
        self.port_out = self._pub.bind_to_random_port("tcp://127.0.0.1")
        self._thread = threading.Thread(target=self._serve, name="bert-service", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "BertService":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._context.term()

    def __enter__(self) -> "BertService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the protocol --------------------------------------------------------------------------
    def config(self) -> dict:
        return {"server_version": SERVER_VERSION, "max_seq_len": self.max_seq_len,
                "show_tokens_to_client": False, "pooling_strategy": "REDUCE_MEAN",
                "num_worker": 1}

    def _reply(self, client: bytes, payload: bytes, req_id: bytes) -> list[bytes]:
        if payload in (b"SHOW_CONFIG", b"SHOW_STATUS"):
            return [client, json.dumps(self.config()).encode(), req_id]
        texts = json.loads(payload.decode("utf-8"))
        vectors = np.ascontiguousarray(self.encoder(texts), dtype=np.float32)
        header = {"dtype": str(vectors.dtype), "shape": list(vectors.shape), "tokens": ""}
        return [client, json.dumps(header).encode(), vectors.tobytes(), req_id]

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        poller.register(self._pub, zmq.POLLIN)
        subscribed: set[bytes] = set()
        waiting: list[list[bytes]] = []  # replies for clients not subscribed yet
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(50))
                if self._pub in events:
                    message = self._pub.recv()
                    if message[:1] == b"\x01":
                        subscribed.add(message[1:])
                    elif message[:1] == b"\x00":
                        subscribed.discard(message[1:])
                if self._pull in events:
                    frames = self._pull.recv_multipart()
                    client, payload, req_id = frames[0], frames[1], frames[2]
                    self.requests.append(payload)
                    waiting.append(self._reply(client, payload, req_id))
                still = []
                for reply in waiting:
                    if reply[0] in subscribed:
                        self._pub.send_multipart(reply)
                    else:
                        still.append(reply)
                waiting = still
        finally:
            self._pull.close()
            self._pub.close()
