"""A training callback that streams learning curves to MLflow.

The training loop knows nothing of MLflow; it calls ``on_train_begin``, ``on_epoch_end`` and
``on_train_end`` on whatever callbacks it is given. :class:`MLflowCallback` opens one nested
run per ensemble member, buffers each epoch's values and sends them in one batch per run
every ``flush_seconds`` (a SQLite write per metric per epoch would cost more than a small
epoch), and closes the member runs at the end. If tracking fails mid-training the callback
stops tracking, keeps the message in :attr:`MLflowCallback.error` and lets training finish.
"""

from __future__ import annotations

import time

from pesnet.tracking.store import TrackingError


class MLflowCallback:
    """Streams per-epoch metrics to a :class:`~pesnet.tracking.session.TrackingSession`."""

    def __init__(self, session, flush_seconds: float = 2.0):
        self.session = session
        self.flush_seconds = flush_seconds
        self.error: str | None = None
        self._pending: list = []
        self._stamps: list[float] = []
        self._seen: set[int] = set()
        self._last_flush = time.monotonic()

    def _safely(self, action, *args, **kwargs) -> None:
        if self.error is not None:
            return
        try:
            action(*args, **kwargs)
        except TrackingError as error:
            self.error = str(error)
        except Exception as error:  # tracking must never stop training
            self.error = f"MLflow tracking failed: {error}"

    def on_train_begin(self, settings=None, start_epoch: int = 0, **info) -> None:
        if settings is not None:
            self._safely(self.session.start_members, settings.n_members, settings.seed,
                         settings.bootstrap)

    def on_epoch_end(self, record) -> None:
        self._pending.append(record)
        self._stamps.append(time.time())
        self._seen.add(int(record.epoch))
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._safely(self.session.log_epochs, self._pending, self._stamps)
        self._pending, self._stamps = [], []
        self._last_flush = time.monotonic()

    def on_train_end(self, potential, history) -> None:
        # epochs before a resume were never seen here: log them first, then the buffer
        earlier = [r for r in history if int(r.epoch) not in self._seen]
        if earlier:
            self._safely(self.session.log_epochs, earlier)
        self.flush()
        self._safely(self.session.finish_members, getattr(potential, "metadata", None))
