"""Counters and gauges, rendered in the Prometheus text format."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

__all__ = ["Metrics"]


class Metrics:
    """A few process-wide numbers an operator watches."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.errors: Counter[int] = Counter()
        self.pushes_sent = 0
        self.sockets_opened = 0
        self.sockets_closed_slow = 0
        self.sms_sent = 0
        self.sms_failed = 0
        self.gauges: dict[str, Callable[[], float]] = {}

    def render(self) -> str:
        lines = [
            "# TYPE lovewire_requests_total counter",
            *(
                f'lovewire_requests_total{{type="{t}"}} {n}'
                for t, n in sorted(self.requests.items())
            ),
            "# TYPE lovewire_errors_total counter",
            *(
                f'lovewire_errors_total{{error_no="{e}"}} {n}'
                for e, n in sorted(self.errors.items())
            ),
            "# TYPE lovewire_pushes_sent_total counter",
            f"lovewire_pushes_sent_total {self.pushes_sent}",
            "# TYPE lovewire_sockets_opened_total counter",
            f"lovewire_sockets_opened_total {self.sockets_opened}",
            "# TYPE lovewire_sockets_closed_slow_total counter",
            f"lovewire_sockets_closed_slow_total {self.sockets_closed_slow}",
            "# TYPE lovewire_sms_sent_total counter",
            f"lovewire_sms_sent_total {self.sms_sent}",
            "# TYPE lovewire_sms_failed_total counter",
            f"lovewire_sms_failed_total {self.sms_failed}",
        ]
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE {name} gauge", f"{name} {read()}"]
        return "\n".join(lines) + "\n"
